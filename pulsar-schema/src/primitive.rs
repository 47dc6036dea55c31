//! The primitive kinds: bytes, strings, booleans, integers, floats and the Java date and time
//! types, each encoded as the Java client's schema of that kind (`Schema.INT32`, ...): fixed-size
//! big-endian numbers, UTF-8 text, raw bytes.

use std::marker::PhantomData;

use bytes::Bytes;

use crate::{Schema, SchemaError, SchemaInfo, SchemaType};

/// A value with a primitive schema kind (implemented for `Bytes`, `Vec<u8>`, `String`, `bool`,
/// `i8`, `i16`, `i32`, `i64`, `f32`, `f64` and the date and time types of this crate).
pub trait PrimitiveValue: Sized + Send + Sync + 'static {
    /// The kind.
    const KIND: SchemaType;

    /// The payload.
    fn to_payload(&self) -> Bytes;

    /// The value of `payload`.
    fn from_payload(payload: &[u8]) -> Result<Self, SchemaError>;
}

/// The schema of a primitive value type `T` (build with [`primitive`]).
#[derive(Debug, Clone)]
pub struct Primitive<T> {
    info: SchemaInfo,
    _value: PhantomData<fn() -> T>,
}

/// The schema of `T`: `primitive::<i64>()` is the Java client's `Schema.INT64`,
/// `primitive::<String>()` its `Schema.STRING`, `primitive::<Bytes>()` `Schema.BYTES`.
pub fn primitive<T: PrimitiveValue>() -> Primitive<T> {
    Primitive {
        info: SchemaInfo::primitive(T::KIND),
        _value: PhantomData,
    }
}

impl<T: PrimitiveValue> Schema for Primitive<T> {
    type Value = T;

    fn info(&self) -> &SchemaInfo {
        &self.info
    }

    fn encode(&self, value: &T) -> Result<Bytes, SchemaError> {
        Ok(value.to_payload())
    }

    fn decode(&self, payload: &[u8]) -> Result<T, SchemaError> {
        T::from_payload(payload)
    }
}

/// `parts` one after the other, cut from the encoding arena.
fn copied(parts: &[&[u8]]) -> Bytes {
    let written: Result<Bytes, std::convert::Infallible> = crate::arena::encode(|buf| {
        for part in parts {
            bytes::BufMut::put_slice(buf, part);
        }
        Ok(())
    });
    match written {
        Ok(b) => b,
        Err(never) => match never {},
    }
}

/// The first `N` bytes of `payload`, which must be exactly `N` long.
fn fixed<const N: usize>(kind: SchemaType, payload: &[u8]) -> Result<[u8; N], SchemaError> {
    payload.try_into().map_err(|_| SchemaError::Size {
        kind,
        expected: N,
        actual: payload.len(),
    })
}

/// Implements [`PrimitiveValue`] for a number type with its big-endian bytes.
macro_rules! number {
    ($($ty:ty => $kind:ident,)*) => {$(
        impl PrimitiveValue for $ty {
            const KIND: SchemaType = SchemaType::$kind;

            fn to_payload(&self) -> Bytes {
                copied(&[&self.to_be_bytes()])
            }

            fn from_payload(payload: &[u8]) -> Result<Self, SchemaError> {
                Ok(<$ty>::from_be_bytes(fixed(Self::KIND, payload)?))
            }
        }
    )*};
}

number! {
    i8 => Int8,
    i16 => Int16,
    i32 => Int32,
    i64 => Int64,
    f32 => Float,
    f64 => Double,
}

impl PrimitiveValue for bool {
    const KIND: SchemaType = SchemaType::Boolean;

    fn to_payload(&self) -> Bytes {
        Bytes::from_static(if *self { &[1] } else { &[0] })
    }

    fn from_payload(payload: &[u8]) -> Result<Self, SchemaError> {
        let [b] = fixed::<1>(Self::KIND, payload)?;
        Ok(b != 0)
    }
}

impl PrimitiveValue for String {
    const KIND: SchemaType = SchemaType::String;

    fn to_payload(&self) -> Bytes {
        copied(&[self.as_bytes()])
    }

    fn from_payload(payload: &[u8]) -> Result<Self, SchemaError> {
        std::str::from_utf8(payload)
            .map(str::to_owned)
            .map_err(|e| SchemaError::Utf8(e.to_string()))
    }
}

impl PrimitiveValue for Bytes {
    const KIND: SchemaType = SchemaType::Bytes;

    fn to_payload(&self) -> Bytes {
        self.clone()
    }

    fn from_payload(payload: &[u8]) -> Result<Self, SchemaError> {
        Ok(Bytes::copy_from_slice(payload))
    }
}

impl PrimitiveValue for Vec<u8> {
    const KIND: SchemaType = SchemaType::Bytes;

    fn to_payload(&self) -> Bytes {
        copied(&[self])
    }

    fn from_payload(payload: &[u8]) -> Result<Self, SchemaError> {
        Ok(payload.to_vec())
    }
}

/// Implements [`PrimitiveValue`] for a newtype over `i64` encoded as 8 big-endian bytes.
macro_rules! long_newtype {
    ($($(#[$doc:meta])* $name:ident => $kind:ident,)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub i64);

        impl PrimitiveValue for $name {
            const KIND: SchemaType = SchemaType::$kind;

            fn to_payload(&self) -> Bytes {
                self.0.to_payload()
            }

            fn from_payload(payload: &[u8]) -> Result<Self, SchemaError> {
                Ok($name(i64::from_be_bytes(fixed(Self::KIND, payload)?)))
            }
        }
    )*};
}

long_newtype! {
    /// `java.util.Date`: milliseconds since the Unix epoch (Java `DATE`).
    Date => Date,
    /// `java.sql.Time`: milliseconds (Java `TIME`).
    Time => Time,
    /// `java.sql.Timestamp`: milliseconds since the Unix epoch (Java `TIMESTAMP`).
    Timestamp => Timestamp,
    /// `java.time.LocalDate`: days since 1970-01-01 (Java `LOCAL_DATE`).
    LocalDate => LocalDate,
    /// `java.time.LocalTime`: nanoseconds since midnight (Java `LOCAL_TIME`).
    LocalTime => LocalTime,
}

/// `java.time.Instant`: seconds since the Unix epoch and nanoseconds within the second (Java
/// `INSTANT`: 12 bytes, the seconds as a big-endian `i64` then the nanoseconds as an `i32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub seconds: i64,
    /// Nanoseconds within the second (0..1e9).
    pub nanos: i32,
}

impl PrimitiveValue for Instant {
    const KIND: SchemaType = SchemaType::Instant;

    fn to_payload(&self) -> Bytes {
        copied(&[&self.seconds.to_be_bytes(), &self.nanos.to_be_bytes()])
    }

    fn from_payload(payload: &[u8]) -> Result<Self, SchemaError> {
        let b: [u8; 12] = fixed(Self::KIND, payload)?;
        let (s, n) = b.split_at(8);
        Ok(Instant {
            seconds: i64::from_be_bytes(s.try_into().unwrap_or_default()),
            nanos: i32::from_be_bytes(n.try_into().unwrap_or_default()),
        })
    }
}

/// `java.time.LocalDateTime`: the day (days since 1970-01-01) and the nanosecond of that day (Java
/// `LOCAL_DATE_TIME`: 16 bytes, both as big-endian `i64`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LocalDateTime {
    /// Days since 1970-01-01.
    pub epoch_day: i64,
    /// Nanoseconds since midnight.
    pub nano_of_day: i64,
}

impl PrimitiveValue for LocalDateTime {
    const KIND: SchemaType = SchemaType::LocalDateTime;

    fn to_payload(&self) -> Bytes {
        copied(&[
            &self.epoch_day.to_be_bytes(),
            &self.nano_of_day.to_be_bytes(),
        ])
    }

    fn from_payload(payload: &[u8]) -> Result<Self, SchemaError> {
        let b: [u8; 16] = fixed(Self::KIND, payload)?;
        let (d, n) = b.split_at(8);
        Ok(LocalDateTime {
            epoch_day: i64::from_be_bytes(d.try_into().unwrap_or_default()),
            nano_of_day: i64::from_be_bytes(n.try_into().unwrap_or_default()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: PrimitiveValue + PartialEq + std::fmt::Debug>(value: T, wire: &[u8]) {
        let s = primitive::<T>();
        assert_eq!(&s.encode(&value).unwrap()[..], wire, "{value:?}");
        assert_eq!(s.decode(wire).unwrap(), value);
    }

    #[test]
    fn java_encodings() {
        round_trip(-2i8, &[0xfe]);
        round_trip(0x0102i16, &[1, 2]);
        round_trip(-1i32, &[0xff; 4]);
        round_trip(1i64 << 40, &[0, 0, 1, 0, 0, 0, 0, 0]);
        round_trip(1.5f32, &[0x3f, 0xc0, 0, 0]);
        round_trip(-2.0f64, &[0xc0, 0, 0, 0, 0, 0, 0, 0]);
        round_trip(true, &[1]);
        round_trip(false, &[0]);
        round_trip("héllo".to_string(), "héllo".as_bytes());
        round_trip(Bytes::from_static(b"\0\x01"), b"\0\x01");
        round_trip(Date(1_700_000_000_123), &1_700_000_000_123i64.to_be_bytes());
        round_trip(LocalDate(19_000), &19_000i64.to_be_bytes());
        round_trip(
            Instant {
                seconds: 1,
                nanos: 2,
            },
            &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2],
        );
        round_trip(
            LocalDateTime {
                epoch_day: 3,
                nano_of_day: 4,
            },
            &[0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4],
        );
    }

    #[test]
    fn java_reads_any_non_zero_byte_as_true() {
        assert!(primitive::<bool>().decode(&[7]).unwrap());
    }

    #[test]
    fn wrong_sizes_and_bad_text_are_typed_errors() {
        assert_eq!(
            primitive::<i32>().decode(&[1, 2, 3]),
            Err(SchemaError::Size {
                kind: SchemaType::Int32,
                expected: 4,
                actual: 3
            })
        );
        assert!(primitive::<Instant>().decode(&[0; 8]).is_err());
        assert!(matches!(
            primitive::<String>().decode(&[0xff]),
            Err(SchemaError::Utf8(_))
        ));
    }

    #[test]
    fn infos_are_javas() {
        let names: Vec<(SchemaType, String)> = [
            primitive::<i8>().info().clone(),
            primitive::<i32>().info().clone(),
            primitive::<bool>().info().clone(),
            primitive::<String>().info().clone(),
            primitive::<LocalDateTime>().info().clone(),
        ]
        .into_iter()
        .map(|i| (i.kind, i.name))
        .collect();
        assert_eq!(
            names,
            vec![
                (SchemaType::Int8, "INT8".into()),
                (SchemaType::Int32, "INT32".into()),
                (SchemaType::Boolean, "Boolean".into()),
                (SchemaType::String, "String".into()),
                (SchemaType::LocalDateTime, "LocalDateTime".into()),
            ]
        );
    }
}
