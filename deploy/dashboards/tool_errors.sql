-- Tools by call count and error rate over the last day.
SELECT
    tool_name,
    count() AS calls,
    countIf(status_code = 'ERROR') AS errors,
    round(errors / calls, 4) AS error_rate,
    quantile(0.95)(duration_ns) / 1e6 AS p95_ms
FROM tracetape.spans FINAL
WHERE project = {project:String} AND kind = 'tool_call' AND start_time >= now() - INTERVAL 1 DAY
GROUP BY tool_name
ORDER BY calls DESC;
