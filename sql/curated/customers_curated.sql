-- customers_curated: consenting customers who have at least one trusted phone reading.
--
-- Grain: one row per customer. customer_key is the pseudonymous key that curated
-- tables use instead of the e-mail address: a keyed hash (HMAC-SHA-256) of the
-- normalized address, with a secret kept outside every table.
--
-- In every join the table named first is the one held in memory: the smaller one.
--
-- incremental: per customer

WITH phone_users AS (
    -- Every spelling of an address with a trusted phone reading, once: addresses are
    -- then normalized per spelling, not per reading.
    SELECT DISTINCT user FROM accelerometer_trusted
),

phone_customers AS (
    SELECT DISTINCT customer_id(user) AS customer FROM phone_users
)

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
FROM phone_customers AS p
JOIN customer_trusted AS c
    ON customer_id(c.email) = p.customer
