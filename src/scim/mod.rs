//! Rollcall's own SCIM 2.0 service provider (RFC 7643, 7644), for identity providers that provision
//! without a broker. So far: reading SCIM filters and PATCH paths ([`filter`]) and applying PATCH
//! requests to a resource ([`patch`]).

pub mod filter;
pub mod patch;
