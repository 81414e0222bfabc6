-- accelerometer_trusted: phone readings of customers in customer_trusted.
--
-- Grain: one row per landed accelerometer reading; accelerometer columns only.
-- Consent policy `any-time` keeps every reading of a consenting customer;
-- `since-consent` keeps only readings taken at or after their consent date.
-- _customer is customer_id(user), stored at ingest.
--
-- In every join the table named first is the one held in memory: the smaller one.
--
-- incremental: per customer

SELECT
    a.user,
    a.timestamp,
    a.x,
    a.y,
    a.z
FROM customer_trusted AS c
JOIN accelerometer_landing AS a
    ON a._customer = customer_id(c.email)
WHERE consent_policy() = 'any-time'
   OR a.timestamp >= c.shareWithResearchAsOfDate
