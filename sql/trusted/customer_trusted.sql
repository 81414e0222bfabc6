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
    SELECT
        *,
        row_number() OVER (
            PARTITION BY _customer
            ORDER BY lastUpdateDate DESC NULLS LAST, _file DESC, _line DESC
        ) AS recency
    FROM customer_landing
),

latest AS (
    SELECT * FROM records WHERE recency = 1
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
