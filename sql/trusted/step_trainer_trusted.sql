-- step_trainer_trusted: step-trainer readings attributed to a curated customer.
--
-- Grain: one row per landed step-trainer reading, each at most once.
-- The fulfillment site reused serial numbers, so a serial alone does not identify
-- a customer. A reading is attributed to a customer by evidence: the serial matches
-- AND that customer's phone recorded at the same instant. A reading for which that
-- evidence points at more than one customer cannot be attributed and is left out.
--
-- In every join the table named first is the one held in memory: the smaller one.
--
-- incremental: per reading

WITH customers AS (
    -- The curated customers and their serial numbers, numbered: grouping and joining
    -- by numbers is far cheaper than by text.
    SELECT
        customer_id(email) AS customer,
        serialNumber,
        customer_key,
        row_number() OVER (ORDER BY customer_key) AS number,
        dense_rank() OVER (ORDER BY serialNumber) AS serial
    FROM customers_curated
),

serials AS (
    SELECT DISTINCT serialNumber, serial FROM customers
),

claims AS (
    -- For each serial number and instant: the curated customers with that serial
    -- whose phone recorded then. One customer when the lowest and highest number agree.
    SELECT
        c.serial,
        a.timestamp,
        min(c.number) AS first_claimant,
        max(c.number) AS last_claimant
    FROM customers AS c
    JOIN accelerometer_trusted AS a
        ON customer_id(a.user) = c.customer
    GROUP BY c.serial, a.timestamp
),

readings AS (
    -- The step-trainer readings of a curated customer's serial number.
    SELECT s.sensorReadingTime, s.serialNumber, s.distanceFromObject, n.serial
    FROM serials AS n
    JOIN step_trainer_landing AS s
        ON s.serialNumber = n.serialNumber
),

attributed AS (
    SELECT r.sensorReadingTime, r.serialNumber, r.distanceFromObject, k.first_claimant
    FROM claims AS k
    JOIN readings AS r
        ON r.serial = k.serial
       AND r.sensorReadingTime = k.timestamp
    WHERE k.first_claimant = k.last_claimant
)

SELECT
    r.sensorReadingTime,
    r.serialNumber,
    r.distanceFromObject,
    c.customer_key
FROM customers AS c
JOIN attributed AS r
    ON r.first_claimant = c.number
