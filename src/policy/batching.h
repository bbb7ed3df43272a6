// Dynamic batching: from a model's queue of requests, decides which requests
// to send to an instance together as one batch, and when. Pure: it never
// reads a clock, never touches the queue; the runtime calls Decide on every
// arrival, every time an instance slot frees, after acting on a non-empty
// dispatch while slots remain, and at next_wake_us.
//
// What a batch is. A batch holds the oldest queued request and the later
// requests with the same shape_key, in FIFO order, stopping at the first such
// request that would take the total rows above max_batch_size (so FIFO order
// within a shape key is kept; other keys are skipped, never mixed in). A
// single request with more rows than max_batch_size is sent alone. Requests
// of other shape keys wait behind the oldest request (head-of-line order).
//
// Modes.
//  kOff      Whenever a slot is free, send the oldest request alone. Never waits.
//  kFixed    Triton's dynamic batcher. Send when the batch is full (rows reach
//            max_batch_size, or the next same-key request does not fit), when
//            a prefix of it has a preferred size (the largest such prefix goes
//            at once; the rest stay queued), or when the oldest request has
//            waited max_queue_delay_us. NOTE: with a free slot and a lone
//            request it still waits up to max_queue_delay_us, as Triton does:
//            a batcher that never waits only batches what piled up while all
//            slots were busy. Set max_queue_delay_us = 0 for that behaviour.
//  kAdaptive Chooses the batch size and the wait itself from what it learns
//            online (see AdaptiveBatcher below); max_queue_delay_us still caps
//            every wait.
// In every mode waiting never makes a request miss its deadline: a batch is
// sent no later than (earliest deadline in it) - (estimated execution time of
// the batch) - deadline_slack_us, the estimate coming from the learned cost
// model. Before the first OnBatchDone report there is no estimate, so every
// mode sends at once (kFixed too): the first execution teaches the cost.
//
// Errors: Validate; the constructor requires valid options.
// Thread safety: value types; not thread-safe.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace thaw::policy {

enum class BatchingMode { kOff, kFixed, kAdaptive };

struct BatchingOptions {
  BatchingMode mode = BatchingMode::kOff;
  int max_batch_size = 8;                   // rows per batch; >= 1
  Micros max_queue_delay_us = 1000;         // longest a request waits for a batch to fill; >= 0
  std::vector<int> preferred_batch_sizes;   // kFixed: each in [1, max_batch_size], distinct; may be empty
  double slo_p99_ms = 100;                  // kAdaptive: latency target (queueing + execution); > 0
  // A batch kept waiting is sent at least this long before (its earliest
  // deadline - its estimated execution time): room for a late timer, the
  // dispatch itself, and an instance waking after idling (the estimate is
  // learned from back-to-back executions). Measured here, 2026-12: fraud
  // 0.05 ms back to back, 3-12 ms after 2 s idle, whatever its start path. >= 0.
  Micros deadline_slack_us = 20000;
};

Status Validate(const BatchingOptions& options);

// A deadline far enough away to mean "none".
constexpr Micros kNoDeadline = std::numeric_limits<Micros>::max();

struct BatchRequest {
  uint64_t id = 0;
  Micros arrival_us = 0;
  Micros deadline_us = kNoDeadline;
  int64_t rows = 1;        // dim 0 of the request's inputs (BatchRows)
  // ShapeKey of the request's inputs; a view, so building an observation
  // copies no string: the key must outlive the Decide call, like the queue.
  std::string_view shape_key;
};

struct BatchObservation {
  Micros now_us = 0;
  std::span<const BatchRequest> queue;  // oldest first; must outlive the call
  int free_slots = 0;                    // instances that can take a batch now
};

struct BatchDecision {
  // Ids of one batch to send now, FIFO order; empty = send nothing now.
  std::vector<uint64_t> dispatch;
  // When nothing is sent: when to call Decide again even if nothing else
  // happens (the batch's timeout or deadline-driven latest start). nullopt
  // when only an event (arrival, free slot) can change the answer, and always
  // when dispatch is non-empty (call again at once if slots remain).
  std::optional<Micros> next_wake_us;
};

// Learned execution time of a batch, exec_us ~= a + b * rows. Keeps an EWMA
// of the reported times per batch size (sizes 1..max_batch_size; larger
// reports are ignored), so a size that is no longer used keeps its last
// estimate rather than being forgotten, and fits the line by least squares
// over the sizes seen (each weighted by its report count, capped at 8).
// With reports at one size only, the slope cannot be known; the model then
// assumes b = 0 (all overhead), the optimistic prior that lets the adaptive
// batcher try a larger batch and find out. a and b are clamped to >= 0.
class ExecCostModel {
 public:
  explicit ExecCostModel(int max_batch_size = 8);

  void Add(int64_t rows, Micros exec_us);
  bool has_samples() const { return samples_ > 0; }
  // Estimated microseconds to run a batch of `rows` (0 without samples).
  double Predict(int64_t rows) const;
  double intercept_us() const { return a_; }
  double slope_us_per_row() const { return b_; }
  int distinct_sizes() const;

 private:
  void Fit();

  struct SizeStat {
    double ewma_us = 0;
    int count = 0;
  };
  std::vector<SizeStat> by_size_;  // index = rows
  int64_t samples_ = 0;
  double a_ = 0;
  double b_ = 0;
};

// kOff / kFixed decision: a pure function of the options, the observation and
// a cost model (used only for the deadline rule).
BatchDecision DecideBatch(const BatchingOptions& options, const BatchObservation& observation,
                          const ExecCostModel& cost);

// The batcher state for a model, for every mode (kOff and kFixed delegate to
// DecideBatch; they still learn, so a switch to kAdaptive starts informed).
//
// kAdaptive, the choice made. Two things are learned online: the cost model
// above (from OnBatchDone) and the arrival rate in rows/us (an EWMA of the
// inter-arrival gap and of rows per request, from OnArrival; at decision time
// the gap is at least the time since the last arrival, so a stopped stream
// is noticed without new arrivals). From these, on every Decide:
//  1. Target size n*: the largest n <= max_batch_size whose expected latency
//     for the first request in it -- the time for n rows to arrive at the
//     current rate plus the batch's execution time -- fits within 80 % of
//     slo_p99_ms (headroom because these are mean estimates against a p99
//     target). If even n* does not cut the cost per row by 10 % against
//     single-row calls, n* = 1: batching does not pay (compute-bound model,
//     a ~ 0), so the batcher stops waiting.
//  2. A batch with >= n* rows (or full) goes at once.
//  3. Otherwise it waits -- until the oldest request's wait budget runs out
//     (min(max_queue_delay_us, 80 % SLO - exec(n*))) or the deadline rule --
//     but only if the rows expected to arrive by then make the batch's cost
//     per row at least 10 % cheaper than sending what is queued now.
//     Otherwise it sends now.
// So under a steady high rate with per-call overhead (a >> b) batches grow
// towards max_batch_size; under a trickle the fill time alone breaks the
// budget, n* = 1 and requests go at once; with linear cost nothing is gained
// by waiting and it never waits once it has seen two batch sizes.
// Why model-based rather than Clipper's AIMD (probe +1 until the SLO is hit,
// then cut multiplicatively): AIMD oscillates by design and only learns from
// SLO misses, and it sizes batches for throughput, not for the wait a lone
// request pays at a low rate. Like BATCH (SC'20), which fits the arrival
// process and a cost model and chooses batch size and timeout analytically,
// this computes the choice directly from the two learned quantities, so it
// reacts within a few arrivals and is deterministic to test; unlike BATCH it
// uses only mean rates (no distribution fit), hence the SLO headroom.
class AdaptiveBatcher {
 public:
  explicit AdaptiveBatcher(const BatchingOptions& options);  // requires Validate(options).ok()

  // A request arrived at now_us (call in arrival order).
  void OnArrival(Micros now_us, int64_t rows = 1);
  // A batch of `rows` ran in exec_us.
  void OnBatchDone(int64_t rows, Micros exec_us);

  BatchDecision Decide(const BatchObservation& observation) const;

  // kAdaptive's current target batch size at now_us (1..max_batch_size).
  int TargetBatchSize(Micros now_us) const;
  // Learned arrival rate in rows per second at now_us (0 before two arrivals).
  double ArrivalRowsPerSecond(Micros now_us) const;

  const ExecCostModel& cost() const { return cost_; }
  const BatchingOptions& options() const { return options_; }

 private:
  double RowsPerMicro(Micros now_us) const;
  double BudgetUs() const;

  BatchingOptions options_;
  ExecCostModel cost_;
  bool seen_arrival_ = false;
  Micros last_arrival_us_ = 0;
  bool have_gap_ = false;    // two arrivals seen
  double gap_ewma_us_ = 0;
  double rows_ewma_ = 1;
};

}  // namespace thaw::policy
