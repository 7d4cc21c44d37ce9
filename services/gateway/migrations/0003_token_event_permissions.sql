-- Which events a client token's holder may see (subscribers and events.read). NULL event_tenants
-- means the default rule: tenant `national` sees every tenant's events, any other tenant its own.
-- event_tenants holds tenant codes or '*' (every tenant); event_types holds event-type prefixes,
-- empty (or NULL) for every type. Neither may hold a comma (they travel comma-joined).
ALTER TABLE gateway.tokens
    ADD COLUMN event_tenants text[] CHECK (event_tenants IS NULL OR (cardinality(event_tenants) BETWEEN 1 AND 64
                                           AND array_to_string(event_tenants, '') !~ ',')),
    ADD COLUMN event_types text[] CHECK (event_types IS NULL OR (cardinality(event_types) <= 32
                                         AND array_to_string(event_types, '') !~ ','));
