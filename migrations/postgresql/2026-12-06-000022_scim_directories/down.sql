DROP TABLE scim_resources;
DROP TABLE scim_tokens;
DROP TABLE scim_directories;
