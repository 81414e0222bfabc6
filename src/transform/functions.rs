//! SQL functions the models may call: the consent policy of the run and the
//! pseudonymous customer key.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Which readings of a consenting customer may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ConsentPolicy {
    /// Every reading of a customer who consented (at any time).
    #[default]
    AnyTime,
    /// Only readings taken at or after the customer's consent date.
    SinceConsent,
}

impl ConsentPolicy {
    /// The name as used on the command line and returned by `consent_policy()` in SQL.
    pub fn name(self) -> &'static str {
        match self {
            ConsentPolicy::AnyTime => "any-time",
            ConsentPolicy::SinceConsent => "since-consent",
        }
    }
}

/// Computes the pseudonymous key of an e-mail address: HMAC-SHA-256 of the trimmed,
/// lower-cased address under the lakehouse secret, as 64 hex digits.
pub fn customer_key(secret: &[u8], email: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(email.trim().to_lowercase().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Registers `consent_policy()` and `customer_key(email)` in a session.
pub fn register(ctx: &SessionContext, policy: ConsentPolicy, secret: Vec<u8>) {
    let name = policy.name();
    let consent = create_udf(
        "consent_policy",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                name.to_string(),
            ))))
        }),
    );
    ctx.register_udf(consent);
    ctx.register_udf(customer_key_udf(secret));
}

fn customer_key_udf(secret: Vec<u8>) -> ScalarUDF {
    create_udf(
        "customer_key",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let emails = arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
            let emails = emails.as_string::<i32>();
            let mut keys = StringBuilder::with_capacity(emails.len(), emails.len() * 64);
            for email in emails.iter() {
                match email {
                    Some(e) => keys.append_value(customer_key(&secret, e)),
                    None => keys.append_null(),
                }
            }
            let keys: ArrayRef = Arc::new(keys.finish());
            Ok(ColumnarValue::Array(keys))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_ignores_case_and_padding_but_not_the_secret() {
        let k = customer_key(b"secret", "Ann.Lee@Test.com");
        assert_eq!(k, customer_key(b"secret", "  ann.lee@test.com "));
        assert_eq!(k.len(), 64);
        assert_ne!(k, customer_key(b"other", "ann.lee@test.com"));
    }

    #[test]
    fn the_key_is_not_a_plain_hash_of_the_address() {
        use sha2::Digest;
        let plain = hex::encode(Sha256::digest(b"ann.lee@test.com"));
        assert_ne!(customer_key(b"secret", "ann.lee@test.com"), plain);
    }
}
