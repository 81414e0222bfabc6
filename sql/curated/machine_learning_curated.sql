-- machine_learning_curated: training data for step detection.
--
-- Grain: one row per pair of a step_trainer_trusted reading and a phone reading of
-- the same customer at the same instant. No direct identifier (e-mail, name, phone,
-- birthday): customers appear only by their pseudonymous customer_key.
--
-- In every join the table named first is the one held in memory: the smaller one.
--
-- incremental: per reading

WITH customers AS (
    -- The curated customers, numbered, each address normalized once: readings are
    -- paired by number, far cheaper than by text. Their serial numbers let a build in
    -- slices of time pair each slice's readings with their own customers only.
    SELECT
        customer_key,
        customer_id(email) AS customer,
        serialNumber,
        row_number() OVER (ORDER BY customer_key) AS number
    FROM customers_curated
),

readings AS (
    SELECT s.sensorReadingTime, s.serialNumber, s.distanceFromObject, c.number
    FROM customers AS c
    JOIN step_trainer_trusted AS s
        ON s.customer_key = c.customer_key
),

phone AS (
    SELECT c.number, a.timestamp, a.x, a.y, a.z
    FROM customers AS c
    JOIN accelerometer_trusted AS a
        ON customer_id(a.user) = c.customer
),

pairs AS (
    SELECT r.sensorReadingTime, r.serialNumber, r.distanceFromObject, r.number, p.x, p.y, p.z
    FROM readings AS r
    JOIN phone AS p
        ON p.number = r.number
       AND p.timestamp = r.sensorReadingTime
)

SELECT
    p.sensorReadingTime,
    p.serialNumber,
    p.distanceFromObject,
    c.customer_key,
    p.x,
    p.y,
    p.z
FROM customers AS c
JOIN pairs AS p
    ON p.number = c.number
