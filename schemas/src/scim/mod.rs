//! SCIM 2.0 resources and protocol messages (RFC 7643, RFC 7644).
//!
//! These types are lenient where real service providers differ (unknown
//! attributes are ignored, `op` is case-insensitive, `status` may be a number)
//! and exact in what scimfleet itself sends.

mod attr;
mod diff;
mod filter;
mod group;
mod message;
mod user;

pub use attr::{COMMON_PATHS, UnknownAttr, UserAttr, split_value_path};
pub use diff::{diff_user, differing, same_value};
pub use filter::{EqFilter, FilterError, eq_filter};
pub use group::{GroupMember, ScimGroup};
pub use message::{ListResponse, PatchOp, PatchOperation, PatchRequest, ScimError};
pub use user::{EnterpriseUser, GroupRef, Meta, MultiValue, Name, ScimUser, ValueError};

/// Core User schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Enterprise User extension schema URN.
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Core Group schema URN.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// ListResponse message URN.
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// PatchOp message URN.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Error message URN.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The media type of SCIM requests and responses.
pub const SCIM_MEDIA_TYPE: &str = "application/scim+json";
