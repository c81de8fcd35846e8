-- Model-call latency percentiles and token use per model over the last day.
SELECT
    request_model,
    count() AS calls,
    quantile(0.5)(duration_ns) / 1e6 AS p50_ms,
    quantile(0.95)(duration_ns) / 1e6 AS p95_ms,
    quantile(0.99)(duration_ns) / 1e6 AS p99_ms,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    countIf(status_code = 'ERROR') AS errors
FROM tracetape.spans FINAL
WHERE project = {project:String} AND kind = 'model_call' AND start_time >= now() - INTERVAL 1 DAY
GROUP BY request_model
ORDER BY calls DESC;
