-- machine_learning_curated: training data for step detection.
--
-- Grain: one row per pair of a step_trainer_trusted reading and a phone reading of
-- the same customer at the same instant. No direct identifier (e-mail, name, phone,
-- birthday): customers appear only by their pseudonymous customer_key.
--
-- incremental: per reading

WITH customers AS (
    -- The curated customers, numbered: joining by numbers is far cheaper than by text.
    SELECT
        customer_id(email) AS customer,
        customer_key,
        row_number() OVER (ORDER BY customer_key) AS number
    FROM customers_curated
),

steps AS (
    SELECT
        s.sensorReadingTime,
        s.serialNumber,
        s.distanceFromObject,
        s.customer_key,
        c.number
    FROM step_trainer_trusted AS s
    JOIN customers AS c
        ON c.customer_key = s.customer_key
),

phones AS (
    SELECT
        c.number,
        a.timestamp,
        a.x,
        a.y,
        a.z
    FROM accelerometer_trusted AS a
    JOIN customers AS c
        ON customer_id(a.user) = c.customer
)

SELECT
    s.sensorReadingTime,
    s.serialNumber,
    s.distanceFromObject,
    s.customer_key,
    p.x,
    p.y,
    p.z
FROM steps AS s
JOIN phones AS p
    ON p.number = s.number
   AND p.timestamp = s.sensorReadingTime
