//! What text the API accepts in any field: nothing PostgreSQL cannot store (U+0000) and
//! nothing longer than the field can mean, each refused naming the field (400) rather
//! than failing in the database (500).

/// `Err` says what is wrong with `value` as the text of a field at most `max` bytes long.
pub fn acceptable(value: &str, max: usize) -> Result<(), String> {
    if value.contains('\0') {
        return Err("must not contain U+0000 (NUL)".into());
    }
    if value.len() > max {
        return Err(format!("is longer than the {max} bytes allowed"));
    }
    Ok(())
}
