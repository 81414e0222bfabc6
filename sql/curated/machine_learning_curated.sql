-- machine_learning_curated: training data for step detection.
--
-- Grain: one row per pair of a step_trainer_trusted reading and a phone reading of
-- the same customer at the same instant. No direct identifier (e-mail, name, phone,
-- birthday): customers appear only by their pseudonymous customer_key.
--
-- incremental: per reading

SELECT
    s.sensorReadingTime,
    s.serialNumber,
    s.distanceFromObject,
    s.customer_key,
    a.x,
    a.y,
    a.z
FROM step_trainer_trusted AS s
JOIN customers_curated AS c
    ON c.customer_key = s.customer_key
JOIN accelerometer_trusted AS a
    ON customer_id(a.user) = customer_id(c.email)
   AND a.timestamp = s.sensorReadingTime
