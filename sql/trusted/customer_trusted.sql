-- customer_trusted: customers who agreed to share their data for research.
--
-- Grain: one row per customer. A customer is an e-mail address compared trimmed and
-- case-insensitively. When a customer has several records, the latest one (by
-- lastUpdateDate) decides, so a later record that drops shareWithResearchAsOfDate
-- revokes consent. Ties are broken by landing order (file, then line).
-- _customer is customer_id(email), stored at ingest.
--
-- incremental: per customer

WITH records AS (
    -- Every record in order of customer, latest first. A customer's latest record is
    -- then the first of theirs: the one that follows another customer's record.
    SELECT
        *,
        lag(_customer) OVER (
            ORDER BY _customer, lastUpdateDate DESC NULLS LAST, _file DESC, _line DESC
        ) AS previous_customer
    FROM customer_landing
),

latest AS (
    SELECT * FROM records WHERE previous_customer IS DISTINCT FROM _customer
)

SELECT
    customerName,
    email,
    phone,
    birthDay,
    serialNumber,
    registrationDate,
    lastUpdateDate,
    shareWithResearchAsOfDate,
    shareWithPublicAsOfDate,
    shareWithFriendsAsOfDate
FROM latest
WHERE shareWithResearchAsOfDate IS NOT NULL
  AND shareWithResearchAsOfDate <> 0
