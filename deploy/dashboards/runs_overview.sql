-- Runs per agent and outcome over the last day (Grafana: time series, one query per panel).
-- Works against a ClickHouse server or the collector's read-only SQL endpoint.
SELECT
    toStartOfHour(start_time) AS hour,
    agent,
    countIf(outcome = 'ok') AS ok,
    countIf(outcome = 'error') AS errors,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens
FROM tracetape.runs FINAL
WHERE project = {project:String} AND start_time >= now() - INTERVAL 1 DAY
GROUP BY hour, agent
ORDER BY hour, agent;
