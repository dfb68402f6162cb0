-- The legacy "app" database: the mobile app backend.
-- Loaded by `python -m demo` into a throwaway MariaDB (the database itself is created by
-- the demo with utf8mb4). Conventions the unified schema does NOT share, on purpose:
--   * app_orders.status_code is numeric: 10 待支付, 20 已支付, 30 已发货, 40 已完成, 90 已取消
--   * app_orders.total_fen is money in 分 (1/100 元) as an integer
--   * users are known by WeChat unionid/openid; the phone is often missing (NULL)
--   * DATETIME columns hold local time (+08:00), without a zone

CREATE TABLE app_users (
    id                 INT          NOT NULL AUTO_INCREMENT,
    nickname           VARCHAR(64)  NOT NULL,
    phone              VARCHAR(20)  NULL,
    unionid            VARCHAR(64)  NULL,
    openid             VARCHAR(64)  NULL,
    marketing_opt_out  TINYINT(1)   NOT NULL DEFAULT 0,
    created_at         DATETIME     NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uk_app_users_openid (openid),
    KEY idx_app_users_unionid (unionid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE app_orders (
    id           BIGINT        NOT NULL AUTO_INCREMENT,
    order_sn     VARCHAR(32)   NOT NULL,
    user_id      INT           NOT NULL,
    status_code  TINYINT       NOT NULL DEFAULT 10,
    total_fen    INT           NOT NULL,
    remark       VARCHAR(255)  NULL,
    created_at   DATETIME(6)   NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uk_app_orders_order_sn (order_sn),
    KEY idx_app_orders_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
