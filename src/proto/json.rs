//! Enum-typed fields as their proto names in JSON (`fitrank call --json`), as proto3's JSON
//! mapping writes them. `build.rs` points every such field here and implements [`EnumName`] for
//! every generated enum.

use serde::Serializer;

/// The proto name of an enum's value.
pub trait EnumName {
    /// `None` for a number the enum does not define.
    fn name(value: i32) -> Option<&'static str>;
}

/// An `i32` enum field: its value's name, or the number when the enum does not define it.
pub fn name<S: Serializer, E: EnumName>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {
    match E::name(*value) {
        Some(name) => serializer.serialize_str(name),
        None => serializer.serialize_i32(*value),
    }
}

/// A repeated `i32` enum field: each value as [`name`] writes it.
pub fn names<S: Serializer, E: EnumName>(values: &[i32], serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = serializer.serialize_seq(Some(values.len()))?;
    for v in values {
        match E::name(*v) {
            Some(name) => seq.serialize_element(name)?,
            None => seq.serialize_element(v)?,
        }
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    use crate::proto::v1 as pb;

    #[test]
    fn enum_fields_are_written_by_name_and_unknown_numbers_as_numbers() {
        let s = pb::LiveSession {
            session_id: "s".into(),
            category: pb::Category::Sportswear as i32,
            target: Some(pb::TargetAudience { genders: vec![pb::Gender::Female as i32, 99], ..Default::default() }),
            ..Default::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["category"], "CATEGORY_SPORTSWEAR");
        assert_eq!(v["target"]["genders"], serde_json::json!(["GENDER_FEMALE", 99]));
        assert_eq!(v["price_band"], "PRICE_BAND_UNSPECIFIED");
    }
}
