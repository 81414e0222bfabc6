-- step_trainer_trusted: step-trainer readings attributed to a curated customer.
--
-- Grain: one row per landed step-trainer reading, each at most once.
-- The fulfillment site reused serial numbers, so a serial alone does not identify
-- a customer. A reading is attributed to a customer by evidence: the serial matches
-- AND that customer's phone recorded at the same instant. A reading for which that
-- evidence points at more than one customer cannot be attributed and is left out.
--
-- incremental: per reading

WITH claims AS (
    -- For each serial number and instant: the curated customers with that serial
    -- whose phone recorded then. One customer when the smallest and largest key agree.
    SELECT
        c.serialNumber,
        a.timestamp,
        min(c.customer_key) AS customer_key,
        max(c.customer_key) AS last_customer_key
    FROM accelerometer_trusted AS a
    JOIN customers_curated AS c
        ON customer_id(a.user) = customer_id(c.email)
    GROUP BY c.serialNumber, a.timestamp
)

SELECT
    s.sensorReadingTime,
    s.serialNumber,
    s.distanceFromObject,
    k.customer_key
FROM step_trainer_landing AS s
JOIN claims AS k
    ON k.serialNumber = s.serialNumber
   AND k.timestamp = s.sensorReadingTime
WHERE k.customer_key = k.last_customer_key
