//! SQL functions the models may call: the consent policy of the run and the
//! pseudonymous customer key.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, LargeStringBuilder, StringBuilder, StringViewBuilder,
};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf,
};
use datafusion::prelude::SessionContext;

use crate::feed::{customer_id, customer_key, is_customer_id};
use crate::models::ConsentPolicy;

/// Registers `consent_policy()`, `customer_id(email)` and `customer_key(email)` in a
/// session.
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
    register_customer_id(ctx);
    ctx.register_udf(customer_key_udf(secret));
}

/// Registers `customer_id(email)` alone, for sessions that only match customers.
pub fn register_customer_id(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(CustomerId::new()));
}

/// `customer_id(email)` in SQL: see [`customer_id`]. Equal to `lower(trim(email))`, but
/// a column that is already normalized (nearly every feed) is returned as it is, without
/// copying a byte, which matters on joins over millions of readings.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CustomerId {
    signature: Signature,
}

impl CustomerId {
    fn new() -> Self {
        CustomerId {
            signature: Signature::uniform(
                1,
                vec![DataType::Utf8View, DataType::Utf8, DataType::LargeUtf8],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for CustomerId {
    fn name(&self) -> &str {
        "customer_id"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Utf8))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let Some(arg) = args.args.into_iter().next() else {
            return datafusion::common::exec_err!("customer_id takes one argument");
        };
        match arg {
            ColumnarValue::Scalar(value) => {
                let normalized = match &value {
                    ScalarValue::Utf8(v) => ScalarValue::Utf8(v.as_deref().map(normalized)),
                    ScalarValue::Utf8View(v) => ScalarValue::Utf8View(v.as_deref().map(normalized)),
                    ScalarValue::LargeUtf8(v) => {
                        ScalarValue::LargeUtf8(v.as_deref().map(normalized))
                    }
                    other => {
                        return datafusion::common::exec_err!(
                            "customer_id takes text, not {}",
                            other.data_type()
                        );
                    }
                };
                Ok(ColumnarValue::Scalar(normalized))
            }
            ColumnarValue::Array(array) => Ok(ColumnarValue::Array(customer_ids(array)?)),
        }
    }
}

fn normalized(email: &str) -> String {
    customer_id(email).into_owned()
}

/// Normalizes a column of addresses, returning it unchanged when every value already is.
fn customer_ids(array: ArrayRef) -> datafusion::error::Result<ArrayRef> {
    macro_rules! normalize {
        ($values:expr, $builder:ty, $ascii_lowered:expr) => {{
            let values = $values;
            if values.iter().flatten().all(is_customer_id) {
                return Ok(array);
            }
            if let Some(lowered) = $ascii_lowered {
                return Ok(lowered);
            }
            let mut out = <$builder>::new();
            for v in values.iter() {
                out.append_option(v.map(|e| customer_id(e)));
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        }};
    }
    match array.data_type() {
        DataType::Utf8View => {
            let values = array.as_string_view();
            normalize!(values, StringViewBuilder, ascii::lowercase_view(values))
        }
        DataType::Utf8 => {
            let values = array.as_string::<i32>();
            normalize!(values, StringBuilder, ascii::lowercase(values))
        }
        DataType::LargeUtf8 => normalize!(array.as_string::<i64>(), LargeStringBuilder, None),
        other => datafusion::common::exec_err!("customer_id takes text, not {other}"),
    }
}

/// The common case of [`customer_ids`], a column of ASCII addresses without padding:
/// lower-casing then changes no length, so the values are lower-cased as one run of
/// bytes, a few at a time, and offsets (or view lengths) and nulls are kept.
///
/// Little more than the text the column's values use is copied. A column cut out of a
/// larger one (a slice, or the output of a join, whose views point into the join's whole
/// build side) would otherwise have all of the larger column's text copied, batch after
/// batch.
mod ascii {
    use std::sync::Arc;

    use arrow::array::{Array, ArrayRef, StringArray, StringViewArray};
    use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};

    /// `None` when a value is not ASCII or starts or ends with a space.
    pub(super) fn lowercase(array: &StringArray) -> Option<ArrayRef> {
        let offsets = array.value_offsets();
        let (first, last) = (*offsets.first()? as usize, *offsets.last()? as usize);
        let bytes = &array.value_data()[first..last];
        if !bytes.is_ascii() || (0..array.len()).any(|i| padded(array.value(i).as_bytes())) {
            return None;
        }
        // Shifted offsets stay valid for the lower-cased copy: only the bytes they point
        // into change, byte for byte.
        let shift = first as i32;
        let offsets = OffsetBuffer::new(offsets.iter().map(|o| o - shift).collect());
        StringArray::try_new(
            offsets,
            Buffer::from_vec(bytes.to_ascii_lowercase()),
            array.nulls().cloned(),
        )
        .ok()
        .map(|a| Arc::new(a) as ArrayRef)
    }

    /// [`lowercase`] of a view array. Short values are lower-cased in their views. Long
    /// ones are lower-cased where they are when the array's buffers hold little else
    /// (a column as the Parquet reader gives it), and are otherwise copied, lower-cased,
    /// into one new buffer (a join's output, whose buffers are its whole build side).
    pub(super) fn lowercase_view(array: &StringViewArray) -> Option<ArrayRef> {
        let long: usize = array
            .views()
            .iter()
            .map(|v| *v as u32 as usize)
            .filter(|len| *len > 12)
            .sum();
        let held: usize = array.data_buffers().iter().map(|b| b.len()).sum();
        let in_place = held <= 2 * long;
        let mut text: Vec<u8> = Vec::with_capacity(if in_place { 0 } else { long });
        let mut views: Vec<u128> = Vec::with_capacity(array.len());
        for (i, view) in array.views().iter().enumerate() {
            if array.is_null(i) {
                views.push(0);
                continue;
            }
            let value = array.value(i).as_bytes();
            if !value.is_ascii() || padded(value) {
                return None;
            }
            let len = value.len();
            let mut bytes = view.to_le_bytes();
            // Short values are inline after the length; long ones keep a 4-byte prefix,
            // then buffer index and offset.
            let inline = if len <= 12 { len } else { 4 };
            bytes[4..4 + inline].make_ascii_lowercase();
            if len > 12 && !in_place {
                let offset = u32::try_from(text.len()).ok()?;
                text.extend_from_slice(value);
                text[offset as usize..].make_ascii_lowercase();
                bytes[8..12].copy_from_slice(&0u32.to_le_bytes());
                bytes[12..16].copy_from_slice(&offset.to_le_bytes());
            }
            views.push(u128::from_le_bytes(bytes));
        }
        let buffers = if in_place {
            array
                .data_buffers()
                .iter()
                .map(|b| Buffer::from_vec(b.to_ascii_lowercase()))
                .collect()
        } else if text.is_empty() {
            vec![]
        } else {
            vec![Buffer::from_vec(text)]
        };
        StringViewArray::try_new(ScalarBuffer::from(views), buffers, array.nulls().cloned())
            .ok()
            .map(|a| Arc::new(a) as ArrayRef)
    }

    fn padded(value: &[u8]) -> bool {
        value.first().is_some_and(u8::is_ascii_whitespace)
            || value.last().is_some_and(u8::is_ascii_whitespace)
    }
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

    #[tokio::test]
    async fn customer_id_in_sql_equals_lower_of_trimmed_whitespace() {
        let ctx = SessionContext::new();
        register(&ctx, ConsentPolicy::AnyTime, b"s".to_vec());
        let trimmed = "lower(btrim(e, chr(32) || chr(9) || chr(10) || chr(12) || chr(13)))";
        let sql = format!(
            "SELECT count(*) FROM (VALUES ('ann@x.com'), (' Ann@X.com '), ('ÉLODIE@x'), \
             (concat(chr(9), 'bob')), (concat('eve@x', chr(13), chr(10))), (NULL), ('x ')) AS t(e) \
             WHERE (customer_id(e) IS DISTINCT FROM {trimmed}) \
                OR (customer_id(arrow_cast(e, 'Utf8View')) IS DISTINCT FROM {trimmed})"
        );
        let sql = sql.as_str();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let differing = batches[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        assert_eq!(differing, 0);
    }

    /// Whole columns, in every layout and in every case the fast path takes or leaves.
    #[test]
    fn customer_ids_of_a_column_equal_customer_id_of_each_value() {
        use arrow::array::{StringArray, StringViewArray};
        // Each column, and whether the ASCII path (`ascii::lowercase*`) takes it.
        let cases: Vec<(Vec<Option<&str>>, bool)> = vec![
            (
                vec![Some("Ann.Lee@Test.com"), None, Some("BOB@X.COM"), Some("")],
                true,
            ),
            (
                vec![
                    Some("A-much-longer-Address.Than.Twelve@Example.COM"),
                    Some("Short@X"),
                ],
                true,
            ),
            (vec![Some(" Padded@x.com"), Some("Ann@x")], false),
            (vec![Some("ÉLODIE@X.COM"), Some("Ann@x")], false),
            (vec![Some("already@normal.com"), None], true),
        ];
        for (values, ascii) in cases {
            let expected: Vec<Option<String>> = values
                .iter()
                .map(|v| v.map(|e| customer_id(e).into_owned()))
                .collect();
            // Sliced, so that offsets and views do not start at the beginning of a buffer.
            let padded: Vec<Option<&str>> = [Some("Front@X.COM")]
                .into_iter()
                .chain(values.iter().copied())
                .collect();
            let plain: ArrayRef =
                Arc::new(StringArray::from(padded.clone()).slice(1, values.len()));
            let views: ArrayRef = Arc::new(StringViewArray::from(padded).slice(1, values.len()));
            let ascii_path = (
                ascii::lowercase(plain.as_string::<i32>()).is_some(),
                ascii::lowercase_view(views.as_string_view()).is_some(),
            );
            assert_eq!(ascii_path, (ascii, ascii), "{values:?}");
            for array in [plain, views] {
                let out = customer_ids(array).unwrap();
                // Compared as the kernels of a join compare them (views by prefix first).
                let wanted = arrow::compute::cast(
                    &(Arc::new(StringArray::from(expected.clone())) as ArrayRef),
                    out.data_type(),
                )
                .unwrap();
                let same = arrow::compute::kernels::cmp::not_distinct(&out, &wanted).unwrap();
                assert_eq!(same.true_count(), expected.len(), "{values:?}");
                let out = arrow::compute::cast(&out, &DataType::Utf8).unwrap();
                let got: Vec<Option<String>> = out
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(str::to_owned))
                    .collect();
                assert_eq!(got, expected);
            }
        }
    }

    /// A join's output points into its whole build side; lower-casing a batch of it
    /// copies the batch's own values, not all of the build side's text.
    #[test]
    fn lowering_a_few_rows_of_a_large_column_copies_only_their_text() {
        use arrow::array::{StringArray, StringViewArray, UInt32Array};
        let addresses: Vec<String> = (0..10_000)
            .map(|i| format!("Customer.Number.{i:05}@Example.com"))
            .collect();
        let picked = UInt32Array::from(vec![7, 4_242, 9_999]);
        let wanted: usize = [7, 4_242, 9_999].map(|i| addresses[i].len()).iter().sum();

        let views = StringViewArray::from_iter_values(&addresses);
        let few = arrow::compute::take(&views, &picked, None).unwrap();
        let lowered = ascii::lowercase_view(few.as_string_view()).unwrap();
        let text: usize = lowered
            .as_string_view()
            .data_buffers()
            .iter()
            .map(|b| b.len())
            .sum();
        assert_eq!(text, wanted);
        assert_eq!(
            lowered.as_string_view().value(1),
            "customer.number.04242@example.com"
        );

        let plain = StringArray::from_iter_values(&addresses);
        let lowered = ascii::lowercase(&plain.slice(5_000, 2)).unwrap();
        assert_eq!(
            lowered.as_string::<i32>().value_data().len(),
            2 * wanted / 3
        );
        assert_eq!(
            lowered.as_string::<i32>().value(1),
            "customer.number.05001@example.com"
        );
    }
}
