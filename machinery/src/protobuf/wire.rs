//! The protobuf wire format: field keys, varints, fixed-width and length-delimited values.
//!
//! [`Fields`] walks the fields of one encoded message, checking every length against the
//! input, so malformed input ends in a [`ProtoError`] rather than a panic.

use super::ProtoError;

/// The value of one field on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum WireValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: a string, bytes, an embedded message or a packed repeated field.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl WireValue<'_> {
    /// The wire type number.
    pub fn wire_type(&self) -> u8 {
        match self {
            WireValue::Varint(_) => 0,
            WireValue::Fixed64(_) => 1,
            WireValue::Bytes(_) => 2,
            WireValue::Fixed32(_) => 5,
        }
    }
}

/// The largest field number protobuf allows.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// An iterator over the `(field number, value)` pairs of an encoded message.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The message's name, for errors.
    message: &'static str,
    failed: bool,
}

impl<'a> Fields<'a> {
    /// Walks `buf`, an encoded `message` (its name is used in errors).
    pub fn new(buf: &'a [u8], message: &'static str) -> Self {
        Fields {
            buf,
            pos: 0,
            message,
            failed: false,
        }
    }

    fn next_field(&mut self) -> Result<(u32, WireValue<'a>), ProtoError> {
        let message = self.message;
        let key =
            read_varint(self.buf, &mut self.pos).ok_or(ProtoError::TruncatedKey { message })?;
        let number = key >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(ProtoError::InvalidFieldNumber { message, number });
        }
        // In range (checked just above).
        let field = u32::try_from(number).unwrap_or(u32::MAX);
        let truncated = |what| ProtoError::Truncated {
            message,
            field,
            what,
        };
        let value = match key & 7 {
            0 => {
                WireValue::Varint(read_varint(self.buf, &mut self.pos).ok_or(truncated("varint"))?)
            }
            1 => WireValue::Fixed64(u64::from_le_bytes(
                self.take::<8>().ok_or(truncated("fixed64"))?,
            )),
            2 => {
                let len = read_varint(self.buf, &mut self.pos).ok_or(truncated("length"))?;
                let len = usize::try_from(len).map_err(|_| truncated("bytes"))?;
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|&end| end <= self.buf.len())
                    .ok_or(truncated("bytes"))?;
                let bytes = self.buf.get(self.pos..end).ok_or(truncated("bytes"))?;
                self.pos = end;
                WireValue::Bytes(bytes)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(
                self.take::<4>().ok_or(truncated("fixed32"))?,
            )),
            other => {
                return Err(ProtoError::UnsupportedWireType {
                    message,
                    field,
                    wire_type: other as u8,
                });
            }
        };
        Ok((field, value))
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let bytes = self.buf.get(self.pos..end)?.try_into().ok()?;
        self.pos = end;
        Some(bytes)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, WireValue<'a>), ProtoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let item = self.next_field();
        self.failed = item.is_err();
        Some(item)
    }
}

/// Reads a varint at `*pos`, advancing it; `None` when the input ends first or the varint has
/// more than ten bytes.
pub(super) fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// The varints of a packed repeated field.
pub(super) fn packed_varints(
    buf: &[u8],
    message: &'static str,
    field: u32,
) -> Result<Vec<u64>, ProtoError> {
    let mut pos = 0;
    let mut values = Vec::new();
    while pos < buf.len() {
        values.push(read_varint(buf, &mut pos).ok_or(ProtoError::Truncated {
            message,
            field,
            what: "packed varint",
        })?);
    }
    Ok(values)
}

/// The fixed64 values of a packed repeated field.
pub(super) fn packed_fixed64(
    buf: &[u8],
    message: &'static str,
    field: u32,
) -> Result<Vec<u64>, ProtoError> {
    if !buf.len().is_multiple_of(8) {
        return Err(ProtoError::Truncated {
            message,
            field,
            what: "packed fixed64",
        });
    }
    Ok(buf
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect())
}
