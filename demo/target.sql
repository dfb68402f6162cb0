-- The unified PostgreSQL schema (the "数据中台"). Owned by the DBAs: syncd never creates
-- or alters these tables, it only writes rows into them through the mappings in mappings/.
-- Conventions, shared by every channel:
--   * status: 0 待支付, 1 已支付, 2 已发货, 3 已完成, 4 已取消
--   * money in 元 as an exact numeric(12,2)
--   * phone numbers masked (138****5678)
--   * every time is a timestamptz (the sources' local DATETIMEs are converted by syncd)

CREATE TABLE orders (
    channel          text          NOT NULL,
    source_order_id  bigint        NOT NULL,
    order_no         text,
    buyer_phone      text,
    status           smallint      CHECK (status BETWEEN 0 AND 4),
    amount           numeric(12,2),
    note             text,
    created_at       timestamptz,
    deleted_at       timestamptz,
    synced_at        timestamptz,
    member_id        bigint,
    PRIMARY KEY (channel, source_order_id)
);

CREATE INDEX orders_member_idx ON orders (member_id);

COMMENT ON TABLE orders IS 'Orders from every channel, one row per source order';
COMMENT ON COLUMN orders.channel IS 'Which legacy system the order comes from: shop or app';
COMMENT ON COLUMN orders.source_order_id IS 'The order id in its source database';
COMMENT ON COLUMN orders.status IS '0 待支付, 1 已支付, 2 已发货, 3 已完成, 4 已取消';
COMMENT ON COLUMN orders.amount IS 'Order total in 元';
COMMENT ON COLUMN orders.buyer_phone IS 'Masked phone number, e.g. 138****5678';
COMMENT ON COLUMN orders.deleted_at IS 'Set when the order was deleted at the source (soft delete)';
COMMENT ON COLUMN orders.synced_at IS 'Commit time of the last source change applied to the row';
COMMENT ON COLUMN orders.member_id IS 'The unified person who placed the order (persons.person_id)';

CREATE TABLE members (
    channel            text     NOT NULL,
    source_user_id     bigint   NOT NULL,
    display_name       text,
    phone_masked       text,
    unionid            text,
    marketing_opt_out  boolean,
    created_at         timestamptz,
    deleted_at         timestamptz,
    synced_at          timestamptz,
    person_id          bigint,
    PRIMARY KEY (channel, source_user_id)
);

CREATE INDEX members_unionid_idx ON members (unionid);
CREATE INDEX members_person_idx ON members (person_id);

COMMENT ON TABLE members IS 'Members (users) from every channel, one row per source user';
COMMENT ON COLUMN members.source_user_id IS 'The user id in its source database';
COMMENT ON COLUMN members.phone_masked IS 'Masked phone number, e.g. 138****5678; NULL when unknown';
COMMENT ON COLUMN members.unionid IS 'WeChat unionid, links one person across channels';
COMMENT ON COLUMN members.marketing_opt_out IS 'The member refused marketing messages';
COMMENT ON COLUMN members.synced_at IS 'Commit time of the last source change applied to the row';
COMMENT ON COLUMN members.person_id IS 'The unified person (persons.person_id); shared by the members of one person';

-- One row per person: the same customer known by phone in the shop and by WeChat unionid in
-- the app is one person. Written by syncd only (identity 'person' in mappings/identity.yaml);
-- person ids are re-pointed in members and orders when two persons turn out to be one.
CREATE TABLE persons (
    person_id          bigint       PRIMARY KEY,
    display_name       text,
    phone_masked       text,
    marketing_opt_out  boolean,
    created_at         timestamptz
);

COMMENT ON TABLE persons IS 'Unified persons across channels, one row per person';
COMMENT ON COLUMN persons.display_name IS 'The shop''s real name if known, else the app nickname';
COMMENT ON COLUMN persons.phone_masked IS 'Masked phone of the most recently changed member row';
COMMENT ON COLUMN persons.marketing_opt_out IS 'True when the person opted out in any channel';
COMMENT ON COLUMN persons.created_at IS 'Earliest sign-up in any channel';
