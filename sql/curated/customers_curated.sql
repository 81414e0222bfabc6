-- customers_curated: consenting customers who have at least one trusted phone reading.
--
-- Grain: one row per customer. customer_key is the pseudonymous key that curated
-- tables use instead of the e-mail address: a keyed hash (HMAC-SHA-256) of the
-- normalized address, with a secret kept outside every table.
--
-- incremental: per customer

SELECT
    c.customerName,
    c.email,
    c.phone,
    c.birthDay,
    c.serialNumber,
    c.registrationDate,
    c.lastUpdateDate,
    c.shareWithResearchAsOfDate,
    c.shareWithPublicAsOfDate,
    c.shareWithFriendsAsOfDate,
    customer_key(c.email) AS customer_key
FROM customer_trusted AS c
WHERE customer_id(c.email) IN (
    SELECT customer_id(a.user) FROM accelerometer_trusted AS a
)
