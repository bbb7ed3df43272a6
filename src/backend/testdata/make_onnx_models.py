# Regenerates the tiny ONNX files used by onnx_backend_test:
#   /usr/bin/python3 src/backend/testdata/make_onnx_models.py
# Needs Debian's python3-torch (its exporter; no onnx package needed).
#   onnx_relu6_opset10.onnx  Conv + ReLU6 + Linear, opset 10: OpenCV 4.6 imports it
#   onnx_relu6_opset13.onnx  the same at opset 13: ReLU6 becomes Clip(x, min, max),
#                            which OpenCV 4.6's importer rejects
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 6 * 6, 5)

    def forward(self, image):
        x = torch.nn.functional.relu6(self.conv(image))
        return self.fc(x.flatten(1))


model = Tiny().eval()
for opset in (10, 13):
    torch.onnx.export(model, torch.zeros(1, 1, 6, 6), os.path.join(HERE, f"onnx_relu6_opset{opset}.onnx"),
                      opset_version=opset, input_names=["image"], output_names=["scores"],
                      dynamic_axes={"image": {0: "batch"}, "scores": {0: "batch"}})
print("wrote onnx_relu6_opset10.onnx, onnx_relu6_opset13.onnx")
