-- wrk reporter for bench/run.sh: one machine-readable line after wrk's own --latency output.
-- Only done() is defined, so wrk keeps its fast path (no per-response Lua calls).
-- Latencies are in microseconds; errors.status counts responses with status > 399.
done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"p50_us":%d,"p75_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,' ..
      '"min_us":%d,"max_us":%d,"mean_us":%.1f,"stdev_us":%.1f,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(75), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9),
      latency.min, latency.max, latency.mean, latency.stdev,
      e.connect, e.read, e.write, e.status, e.timeout))
end
