//! Rollcall's own SCIM 2.0 service provider (RFC 7643, 7644), for identity providers that provision
//! without a broker. So far: reading SCIM filters and PATCH paths ([`filter`]), applying PATCH requests
//! to a resource ([`patch`]), showing the attributes a client asks for ([`projection`]), the documents a client discovers the service by, with the list and error
//! shapes ([`discovery`]), and SCIM resources as the apply engine's directory records ([`resources`]).

pub mod directories;
pub mod discovery;
pub mod filter;
pub mod limit;
pub mod patch;
pub mod projection;
pub mod resources;
pub mod store;
