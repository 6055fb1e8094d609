//! `skip_serializing_if` predicates shared by the document and protocol types.

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if signature"
)]
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}
