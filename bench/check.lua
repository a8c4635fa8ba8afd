-- wrk script: POST /v1/check with the token in $TOKEN (a repeated token: warm caches).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = os.getenv("BODY")

done = function(summary, latency, requests)
  io.write(string.format("requests %d, non-2xx %d, errors %d\n", summary.requests,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  io.write(string.format("p50 %.0f us, p99 %.0f us\n", latency:percentile(50), latency:percentile(99)))
end
