-- The legacy "shop" database: the website / mall / mini-program backend.
-- Loaded by `python -m demo` into a throwaway MariaDB (the database itself is created by
-- the demo with utf8mb4). Conventions the unified schema does NOT share, on purpose:
--   * orders.status is Chinese text: 待支付 / 已支付 / 已发货 / 已完成 / 已取消
--   * orders.amount_text is money as text with a unit: "88元", "1,299.50元", "¥2,350.00"
--   * phone numbers are stored in clear
--   * DATETIME columns hold local time (+08:00), without a zone

CREATE TABLE users (
    id          INT          NOT NULL AUTO_INCREMENT,
    name        VARCHAR(64)  NOT NULL,
    phone       VARCHAR(20)  NULL,
    email       VARCHAR(128) NULL,
    created_at  DATETIME     NOT NULL,
    PRIMARY KEY (id),
    KEY idx_users_phone (phone)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE orders (
    id           BIGINT       NOT NULL AUTO_INCREMENT,
    order_no     VARCHAR(32)  NOT NULL,
    user_id      INT          NOT NULL,
    phone        VARCHAR(20)  NULL,
    status       VARCHAR(8)   NOT NULL DEFAULT '待支付',
    amount_text  VARCHAR(32)  NOT NULL,
    is_test      TINYINT      NOT NULL DEFAULT 0,
    note         TEXT         NULL,
    created_at   DATETIME(3)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uk_orders_order_no (order_no),
    KEY idx_orders_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
