#include "deploy/render.h"

#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

namespace thaw::deploy {
namespace {

using ::testing::HasSubstr;

ModelConfig Model(const std::string& name) {
  ModelConfig m;
  m.name = name;
  m.memory_mb = 256;
  m.max_concurrency = 3;
  m.instance_concurrency = 2;
  m.min_instances = 3;
  m.keep_alive_s = 90;
  m.timeout_ms = 2500;
  m.threads = 2;
  m.stable_window_s = 60;
  m.panic_window_s = 6;
  return m;
}

simdjson::dom::element Parse(simdjson::dom::parser& parser, const std::string& json) {
  simdjson::dom::element doc;
  EXPECT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  return doc;
}

std::string Str(simdjson::dom::element e, std::string_view pointer) {
  std::string_view v;
  EXPECT_EQ(e.at_pointer(pointer).get(v), simdjson::SUCCESS) << pointer;
  return std::string(v);
}

int64_t Int(simdjson::dom::element e, std::string_view pointer) {
  int64_t v = -1;
  EXPECT_EQ(e.at_pointer(pointer).get(v), simdjson::SUCCESS) << pointer;
  return v;
}

TEST(MappingsTest, EveryConfigFieldOnceInOrderWithAKnobOrAReason) {
  for (Target target : {Target::kKnative, Target::kKServe, Target::kLambda, Target::kModelMesh}) {
    const auto mappings = Mappings(target);
    ASSERT_EQ(mappings.size(), std::size(kModelConfigFields)) << TargetName(target);
    for (size_t i = 0; i < mappings.size(); ++i) {
      EXPECT_EQ(mappings[i].field, kModelConfigFields[i]) << TargetName(target);
      EXPECT_FALSE(mappings[i].how.empty()) << mappings[i].field;
    }
    const std::string table = MappingTable(target);
    for (const auto& m : mappings) EXPECT_THAT(table, HasSubstr("| `" + std::string(m.field) + "` |"));
  }
  const auto knative = Mappings(Target::kKnative);
  auto knob = [&](std::string_view field) {
    for (const auto& m : knative)
      if (m.field == field) return std::string(m.knob);
    return std::string("?");
  };
  EXPECT_EQ(knob("min_instances"), "autoscaling.knative.dev/min-scale");
  EXPECT_EQ(knob("keep_alive_s"), "autoscaling.knative.dev/scale-to-zero-pod-retention-period");
  EXPECT_EQ(knob("max_queue"), "");
  EXPECT_THAT(MappingTable(Target::kKnative), HasSubstr("| `max_queue` | no equivalent |"));
}

TEST(RenderTest, KnativeServicePerModelWithThePodsNumbers) {
  RenderOptions options;
  options.max_scale = 10;
  options.image = "registry.example/thaw:1";
  auto files = Render(Target::kKnative, {Model("fraud"), Model("fashion")}, options);
  ASSERT_TRUE(files.ok()) << files.status().message();
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].name, "fraud.json");
  simdjson::dom::parser parser;
  auto doc = Parse(parser, (*files)[0].json);
  EXPECT_EQ(Str(doc, "/apiVersion"), "serving.knative.dev/v1");
  EXPECT_EQ(Str(doc, "/kind"), "Service");
  EXPECT_EQ(Str(doc, "/metadata/name"), "fraud");
  const std::string a = "/spec/template/metadata/annotations/autoscaling.knative.dev~1";
  EXPECT_EQ(Str(doc, a + "metric"), "concurrency");
  EXPECT_EQ(Str(doc, a + "min-scale"), "1");   // ceil(3 instances / 3 per pod)
  EXPECT_EQ(Str(doc, a + "max-scale"), "10");
  EXPECT_EQ(Str(doc, a + "target"), "6");      // instance_concurrency 2 x 3 instances
  EXPECT_EQ(Str(doc, a + "scale-to-zero-pod-retention-period"), "90s");
  EXPECT_EQ(Str(doc, a + "window"), "60s");
  EXPECT_EQ(Str(doc, a + "panic-window-percentage"), "10");
  EXPECT_EQ(Int(doc, "/spec/template/spec/containerConcurrency"), 6);
  EXPECT_EQ(Int(doc, "/spec/template/spec/timeoutSeconds"), 3);  // 2500 ms rounded up
  const std::string c = "/spec/template/spec/containers/0";
  EXPECT_EQ(Str(doc, c + "/image"), "registry.example/thaw:1");
  EXPECT_EQ(Str(doc, c + "/args/3"), "fraud");  // --repo /models --models fraud
  EXPECT_EQ(Str(doc, c + "/resources/limits/memory"), "1280Mi");  // 512 + 3 x 256
  EXPECT_EQ(Str(doc, c + "/resources/requests/cpu"), "6");       // 3 instances x 2 threads
  EXPECT_EQ(Str(doc, c + "/readinessProbe/httpGet/path"), "/v2/health/ready");
  EXPECT_EQ(Int(doc, c + "/securityContext/runAsUser"), 65534);
}

TEST(RenderTest, TargetConcurrencyAndNoMaxScaleByDefault) {
  ModelConfig m = Model("fraud");
  m.target_concurrency = 0.5;
  m.min_instances = 0;
  auto files = Render(Target::kKnative, {m}, {});
  ASSERT_TRUE(files.ok()) << files.status().message();
  simdjson::dom::parser parser;
  auto doc = Parse(parser, (*files)[0].json);
  const std::string a = "/spec/template/metadata/annotations/autoscaling.knative.dev~1";
  EXPECT_EQ(Str(doc, a + "target"), "2");  // ceil(0.5 x 3)
  EXPECT_EQ(Str(doc, a + "min-scale"), "0");
  simdjson::dom::element unused;
  EXPECT_NE(doc.at_pointer(a + "max-scale").get(unused), simdjson::SUCCESS);
}

TEST(RenderTest, KServeRuntimeFirstThenAnInferenceServicePerModel) {
  RenderOptions options;
  options.storage_uri = "s3://models/repo";
  ModelConfig xgb = Model("fraud-xgb");
  xgb.backend = "xgboost";
  ModelConfig onnx = Model("fashion-onnx");
  onnx.backend = "onnx";
  auto files = Render(Target::kKServe, {Model("fraud"), xgb, onnx}, options);
  ASSERT_TRUE(files.ok()) << files.status().message();
  ASSERT_EQ(files->size(), 4u);
  simdjson::dom::parser parser;
  auto runtime = Parse(parser, (*files)[0].json);
  EXPECT_EQ(Str(runtime, "/kind"), "ServingRuntime");
  EXPECT_EQ(Str(runtime, "/metadata/name"), "thaw");
  EXPECT_EQ(Str(runtime, "/spec/protocolVersions/0"), "v2");
  EXPECT_EQ(Str(runtime, "/spec/containers/0/args/1"), "/mnt/models");
  std::set<std::string> formats;
  for (auto f : runtime.at_pointer("/spec/supportedModelFormats").get_array()) formats.insert(Str(f, "/name"));
  EXPECT_EQ(formats, (std::set<std::string>{"pytorch", "xgboost", "onnx"}));

  const char* expected_format[] = {"pytorch", "xgboost", "onnx"};
  for (int i = 0; i < 3; ++i) {
    simdjson::dom::parser p;
    auto isvc = Parse(p, (*files)[i + 1].json);
    EXPECT_EQ(Str(isvc, "/kind"), "InferenceService");
    EXPECT_EQ(Str(isvc, "/spec/predictor/model/modelFormat/name"), expected_format[i]);
    EXPECT_EQ(Str(isvc, "/spec/predictor/model/protocolVersion"), "v2");
    EXPECT_EQ(Str(isvc, "/spec/predictor/model/runtime"), "thaw");
    EXPECT_EQ(Str(isvc, "/spec/predictor/model/storageUri"), "s3://models/repo");
    EXPECT_EQ(Int(isvc, "/spec/predictor/minReplicas"), 1);
    EXPECT_EQ(Int(isvc, "/spec/predictor/scaleTarget"), 6);
    EXPECT_EQ(Str(isvc, "/spec/predictor/scaleMetric"), "concurrency");
    EXPECT_EQ(Int(isvc, "/spec/predictor/containerConcurrency"), 6);
    EXPECT_EQ(Str(isvc, "/metadata/annotations/autoscaling.knative.dev~1scale-to-zero-pod-retention-period"), "90s");
  }
}

TEST(RenderTest, ValuesTheEngineCannotTakeAreRefusedNamingModelAndField) {
  auto refused = [](Target target, const ModelConfig& m, const RenderOptions& options) {
    auto files = Render(target, {Model("ok"), m}, options);
    EXPECT_FALSE(files.ok());
    return files.ok() ? std::string() : files.status().message();
  };
  EXPECT_THAT(refused(Target::kKnative, Model("Bad_Name"), {}), HasSubstr("model 'Bad_Name': name: not a DNS-1123"));
  ModelConfig slow = Model("slow");
  slow.timeout_ms = 900000;
  EXPECT_THAT(refused(Target::kKnative, slow, {}), HasSubstr("model 'slow': timeout_ms: 900000 ms is over"));
  RenderOptions longer;
  longer.max_revision_timeout_s = 900;
  EXPECT_TRUE(Render(Target::kKnative, {slow}, longer).ok());
  ModelConfig twitchy = Model("twitchy");
  twitchy.stable_window_s = 3;
  EXPECT_THAT(refused(Target::kKnative, twitchy, {}), HasSubstr("stable_window_s: 3 s is outside"));
  auto no_uri = Render(Target::kKServe, {Model("ok")}, {});
  ASSERT_FALSE(no_uri.ok());
  EXPECT_THAT(no_uri.status().message(), HasSubstr("storage URI"));
  RenderOptions bad_namespace;
  bad_namespace.namespace_name = "Not_A_Label";
  EXPECT_EQ(Validate(bad_namespace).code(), StatusCode::kInvalidArgument);
}


TEST(RenderTest, LambdaTemplateWithAFunctionUrlAndProvisionedAliasPerModel) {
  ModelConfig idle = Model("fraud-xgb");
  idle.min_instances = 0;
  auto files = Render(Target::kLambda, {Model("fraud"), idle}, {});
  ASSERT_TRUE(files.ok()) << files.status().message();
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*files)[0].name, "template.json");
  simdjson::dom::parser parser;
  auto doc = Parse(parser, (*files)[0].json);
  EXPECT_EQ(Str(doc, "/Resources/FraudFunction/Type"), "AWS::Lambda::Function");
  EXPECT_EQ(Str(doc, "/Resources/FraudFunction/Properties/PackageType"), "Image");
  EXPECT_EQ(Int(doc, "/Resources/FraudFunction/Properties/MemorySize"), 256);
  EXPECT_EQ(Int(doc, "/Resources/FraudFunction/Properties/Timeout"), 3);
  EXPECT_EQ(Int(doc, "/Resources/FraudFunction/Properties/ReservedConcurrentExecutions"), 3);
  EXPECT_EQ(Str(doc, "/Resources/FraudFunction/Properties/ImageConfig/Command/3"), "fraud");
  EXPECT_EQ(Str(doc, "/Resources/FraudUrl/Properties/AuthType"), "AWS_IAM");
  EXPECT_EQ(Str(doc, "/Resources/FraudAlias/Properties/Name"), "live");
  EXPECT_EQ(Int(doc, "/Resources/FraudAlias/Properties/ProvisionedConcurrencyConfig/ProvisionedConcurrentExecutions"), 3);
  EXPECT_EQ(Str(doc, "/Resources/FraudXgbFunction/Type"), "AWS::Lambda::Function");
  simdjson::dom::element unused;
  EXPECT_NE(doc.at_pointer("/Resources/FraudXgbAlias").get(unused), simdjson::SUCCESS);  // no provisioned instances
}

TEST(RenderTest, LambdaRefusesWhatLambdaCannotTake) {
  ModelConfig slow = Model("slow");
  slow.timeout_ms = 901000;
  auto files = Render(Target::kLambda, {slow}, {});
  ASSERT_FALSE(files.ok());
  EXPECT_THAT(files.status().message(), HasSubstr("model 'slow': timeout_ms: 901000 ms is over Lambda's 900 s"));
  auto clash = Render(Target::kLambda, {Model("a-b"), Model("a_b")}, {});
  ASSERT_FALSE(clash.ok());
  EXPECT_THAT(clash.status().message(), HasSubstr("logical id 'AB'"));
}

TEST(RenderTest, ModelMeshRuntimeWithTheModelRuntimeApiAndAnInferenceServicePerModel) {
  RenderOptions options;
  options.storage_uri = "s3://models/repo";
  options.capacity_mb = 8192;
  auto files = Render(Target::kModelMesh, {Model("fraud")}, options);
  ASSERT_TRUE(files.ok()) << files.status().message();
  ASSERT_EQ(files->size(), 2u);
  simdjson::dom::parser parser;
  auto runtime = Parse(parser, (*files)[0].json);
  EXPECT_EQ(Str(runtime, "/metadata/name"), "thaw-modelmesh");
  bool multi = false;
  EXPECT_EQ(runtime.at_pointer("/spec/multiModel").get(multi), simdjson::SUCCESS);
  EXPECT_TRUE(multi);
  EXPECT_EQ(Str(runtime, "/spec/grpcEndpoint"), "port:8081");
  std::vector<std::string> args;
  for (auto a : runtime.at_pointer("/spec/containers/0/args").get_array()) args.emplace_back(std::string_view(a));
  EXPECT_THAT(args, ::testing::IsSupersetOf({"--modelmesh", "on", "8192"}));
  simdjson::dom::parser p;
  auto isvc = Parse(p, (*files)[1].json);
  EXPECT_EQ(Str(isvc, "/metadata/annotations/serving.kserve.io~1deploymentMode"), "ModelMesh");
  EXPECT_EQ(Str(isvc, "/spec/predictor/model/runtime"), "thaw-modelmesh");
  EXPECT_EQ(Str(isvc, "/spec/predictor/model/storageUri"), "s3://models/repo/fraud");
  EXPECT_FALSE(Render(Target::kModelMesh, {Model("fraud")}, {}).ok());  // no storage URI
}

}  // namespace
}  // namespace thaw::deploy
