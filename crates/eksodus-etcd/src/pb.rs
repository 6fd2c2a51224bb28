//! The protobuf wire format, read without a schema: fields as (number, value) in order. Every read is bounds
//! checked; malformed input is an error, never a panic.

/// One field's value on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: bytes, strings, embedded messages, packed repeated fields.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// Reads a varint at `*pos`.
pub fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

/// Every field of a message, in wire order.
pub fn fields(buf: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (num, wt) = ((tag >> 3) as u32, tag & 7);
        if num == 0 {
            return Err("field number 0".into());
        }
        let v = match wt {
            0 => Wire::Varint(varint(buf, &mut pos)?),
            1 => {
                let b = buf.get(pos..pos + 8).ok_or("truncated fixed64")?;
                pos += 8;
                Wire::Fixed64(u64::from_le_bytes(b.try_into().expect("8 bytes")))
            }
            2 => {
                let len = varint(buf, &mut pos)? as usize;
                let end = pos.checked_add(len).ok_or("length overflow")?;
                let b = buf.get(pos..end).ok_or("truncated length-delimited field")?;
                pos = end;
                Wire::Bytes(b)
            }
            5 => {
                let b = buf.get(pos..pos + 4).ok_or("truncated fixed32")?;
                pos += 4;
                Wire::Fixed32(u32::from_le_bytes(b.try_into().expect("4 bytes")))
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((num, v));
    }
    Ok(out)
}

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a length-delimited field.
pub fn put_bytes(out: &mut Vec<u8>, num: u32, b: &[u8]) {
    put_varint(out, (u64::from(num) << 3) | 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends a varint field.
pub fn put_uint(out: &mut Vec<u8>, num: u32, v: u64) {
    put_varint(out, u64::from(num) << 3);
    put_varint(out, v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let mut b = Vec::new();
        put_bytes(&mut b, 1, b"key");
        put_uint(&mut b, 3, 300);
        let f = fields(&b).unwrap();
        assert_eq!(f, vec![(1, Wire::Bytes(b"key")), (3, Wire::Varint(300))]);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = fields(&bytes);
        }
    }
}
