-- step_trainer_trusted: step-trainer readings attributed to a curated customer.
--
-- Grain: one row per landed step-trainer reading, each at most once.
-- The fulfillment site reused serial numbers, so a serial alone does not identify
-- a customer. A reading is attributed to a customer by evidence: the serial matches
-- AND that customer's phone recorded at the same instant. A reading for which that
-- evidence points at more than one customer cannot be attributed and is left out.

WITH phone_instants AS (
    SELECT DISTINCT lower(trim(user)) AS email_key, timestamp
    FROM accelerometer_trusted
),

evidence AS (
    SELECT
        s.sensorReadingTime,
        s.serialNumber,
        s.distanceFromObject,
        s._file,
        s._line,
        c.customer_key
    FROM step_trainer_landing AS s
    JOIN customers_curated AS c
        ON c.serialNumber = s.serialNumber
    JOIN phone_instants AS p
        ON p.email_key = lower(trim(c.email))
       AND p.timestamp = s.sensorReadingTime
),

claims AS (
    -- (_file, _line) identifies a landed reading; the other columns depend on it.
    SELECT
        sensorReadingTime,
        serialNumber,
        distanceFromObject,
        min(customer_key) AS customer_key,
        count(*) AS claimants
    FROM evidence
    GROUP BY _file, _line, sensorReadingTime, serialNumber, distanceFromObject
)

SELECT
    sensorReadingTime,
    serialNumber,
    distanceFromObject,
    customer_key
FROM claims
WHERE claimants = 1
