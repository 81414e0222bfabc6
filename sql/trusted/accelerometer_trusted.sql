-- accelerometer_trusted: phone readings of customers in customer_trusted.
--
-- Grain: one row per landed accelerometer reading; accelerometer columns only.
-- Consent policy `any-time` keeps every reading of a consenting customer;
-- `since-consent` keeps only readings taken at or after their consent date.
-- _customer is customer_id(user), stored at ingest.
--
-- incremental: per customer

SELECT
    a.user,
    a.timestamp,
    a.x,
    a.y,
    a.z
FROM accelerometer_landing AS a
JOIN customer_trusted AS c
    ON a._customer = customer_id(c.email)
WHERE consent_policy() = 'any-time'
   OR a.timestamp >= c.shareWithResearchAsOfDate
