// LLM calls take tens of seconds; OpenTelemetry's default buckets stop at 10 s.
export const DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300]

// The boundaries the GenAI semantic conventions recommend for token counts.
export const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]

// GC pauses: a scavenge takes well under a millisecond and a full mark-compact tens of ms; the
// semantic conventions' default (0.01, 0.1, 1, 10 s) puts nearly all of them in the first bucket.
export const GC_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]

// Time to a stream's accepted event: milliseconds when healthy, with a 50 ms target at p99.
export const FIRST_EVENT_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5]
