-- step_trainer_trusted: step-trainer readings attributed to a curated customer.
--
-- Grain: one row per landed step-trainer reading, each at most once.
-- The fulfillment site reused serial numbers, so a serial alone does not identify
-- a customer. A reading is attributed to a customer by evidence: the serial matches
-- AND that customer's phone recorded at the same instant. A reading for which that
-- evidence points at more than one customer cannot be attributed and is left out.
--
-- incremental: per reading

WITH customers AS (
    -- The curated customers, numbered: grouping by numbers is far cheaper than by text.
    SELECT
        customer_id(email) AS customer,
        serialNumber,
        customer_key,
        row_number() OVER (ORDER BY customer_key) AS number
    FROM customers_curated
),

claims AS (
    -- For each serial number and instant: the curated customers with that serial
    -- whose phone recorded then. One customer when the lowest and highest number agree.
    SELECT
        c.serialNumber,
        a.timestamp,
        min(c.number) AS first_claimant,
        max(c.number) AS last_claimant
    FROM accelerometer_trusted AS a
    JOIN customers AS c
        ON customer_id(a.user) = c.customer
    GROUP BY c.serialNumber, a.timestamp
)

SELECT
    s.sensorReadingTime,
    s.serialNumber,
    s.distanceFromObject,
    c.customer_key
FROM customers AS c
JOIN claims AS k
    ON k.first_claimant = c.number
JOIN step_trainer_landing AS s
    ON s.serialNumber = k.serialNumber
   AND s.sensorReadingTime = k.timestamp
WHERE k.first_claimant = k.last_claimant
