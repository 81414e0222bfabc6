-- machine_learning_curated: training data for step detection.
--
-- Grain: one row per pair of a step_trainer_trusted reading and a phone reading of
-- the same customer at the same instant. No direct identifier (e-mail, name, phone,
-- birthday): customers appear only by their pseudonymous customer_key.
--
-- incremental: per reading

WITH customers AS (
    -- Each curated customer's address normalized once, before it is joined.
    SELECT customer_key, customer_id(email) AS customer
    FROM customers_curated
)

SELECT
    s.sensorReadingTime,
    s.serialNumber,
    s.distanceFromObject,
    s.customer_key,
    a.x,
    a.y,
    a.z
FROM step_trainer_trusted AS s
JOIN customers AS c
    ON c.customer_key = s.customer_key
JOIN accelerometer_trusted AS a
    ON customer_id(a.user) = c.customer
   AND a.timestamp = s.sensorReadingTime
