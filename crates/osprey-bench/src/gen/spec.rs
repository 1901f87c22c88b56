//! The static description of the synthetic shop: services, their endpoints, and what each
//! endpoint does (calls to other services, database and cache queries, messages, internal
//! work). Modelled on the OpenTelemetry demo. [`super::catalog`] resolves the names.

/// How a service is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    Http,
    /// gRPC with the fully qualified service name.
    Grpc(&'static str),
}

#[derive(Debug)]
pub struct ServiceSpec {
    pub name: &'static str,
    pub version: &'static str,
    /// `telemetry.sdk.language`.
    pub lang: &'static str,
    pub rpc: Rpc,
    /// The service's own database: `(db.system, db.name)`.
    pub db: Option<(&'static str, &'static str)>,
    pub endpoints: &'static [EndpointSpec],
}

#[derive(Debug)]
pub struct EndpointSpec {
    /// `"GET /product/{id}"` for HTTP, the method name for gRPC, the topic for consumers.
    pub name: &'static str,
    pub consumer: bool,
    /// Median of the endpoint's own (self) time, milliseconds.
    pub self_ms: f64,
    pub steps: &'static [StepSpec],
}

#[derive(Debug)]
pub struct StepSpec {
    /// Probability that the step happens at all.
    pub p: f32,
    /// The step happens 1..=repeat times.
    pub repeat: u8,
    pub action: ActionSpec,
}

#[derive(Debug)]
pub enum ActionSpec {
    Call(&'static str, &'static str),
    Db(DbSpec),
    Publish(&'static str),
    Internal(&'static str, f64),
}

#[derive(Debug)]
pub struct DbSpec {
    /// `None`: the service's own database.
    pub system: Option<&'static str>,
    pub op: &'static str,
    pub target: &'static str,
    /// May contain one `{id}`, replaced by a random number.
    pub stmt: &'static str,
    pub median_ms: f64,
}

const fn call(p: f32, svc: &'static str, ep: &'static str) -> StepSpec {
    StepSpec {
        p,
        repeat: 1,
        action: ActionSpec::Call(svc, ep),
    }
}
const fn calln(p: f32, repeat: u8, svc: &'static str, ep: &'static str) -> StepSpec {
    StepSpec {
        p,
        repeat,
        action: ActionSpec::Call(svc, ep),
    }
}
const fn sql(
    p: f32,
    repeat: u8,
    op: &'static str,
    target: &'static str,
    stmt: &'static str,
    median_ms: f64,
) -> StepSpec {
    StepSpec {
        p,
        repeat,
        action: ActionSpec::Db(DbSpec {
            system: None,
            op,
            target,
            stmt,
            median_ms,
        }),
    }
}
const fn redis(p: f32, op: &'static str, stmt: &'static str) -> StepSpec {
    StepSpec {
        p,
        repeat: 1,
        action: ActionSpec::Db(DbSpec {
            system: Some("redis"),
            op,
            target: "",
            stmt,
            median_ms: 0.3,
        }),
    }
}
const fn publish(p: f32, topic: &'static str) -> StepSpec {
    StepSpec {
        p,
        repeat: 1,
        action: ActionSpec::Publish(topic),
    }
}
const fn internal(p: f32, name: &'static str, median_ms: f64) -> StepSpec {
    StepSpec {
        p,
        repeat: 1,
        action: ActionSpec::Internal(name, median_ms),
    }
}
const fn ep(name: &'static str, self_ms: f64, steps: &'static [StepSpec]) -> EndpointSpec {
    EndpointSpec {
        name,
        consumer: false,
        self_ms,
        steps,
    }
}
const fn consume(topic: &'static str, self_ms: f64, steps: &'static [StepSpec]) -> EndpointSpec {
    EndpointSpec {
        name: topic,
        consumer: true,
        self_ms,
        steps,
    }
}

/// Root endpoints (all on `frontend`) with their relative weights.
pub const ROOTS: &[(&str, u32)] = &[
    ("GET /", 30),
    ("GET /product/{id}", 30),
    ("POST /api/cart", 10),
    ("GET /api/cart", 10),
    ("POST /api/checkout", 5),
    ("GET /api/search", 10),
    ("GET /api/profile", 5),
];

/// The message topics: `(name, messaging.system)`.
pub const TOPICS: &[(&str, &str)] = &[("orders", "kafka")];

const VERIFY: &str = "POST /auth/verify";
const SEND_MAIL: &str = "POST /send_order_confirmation";

/// The services in order of importance: `--services N` keeps the first N.
pub const SERVICES: &[ServiceSpec] = &[
    ServiceSpec {
        name: "frontend",
        version: "2.1.3",
        lang: "nodejs",
        rpc: Rpc::Http,
        db: None,
        endpoints: &[
            ep("GET /", 3.0, &[
                internal(1.0, "render_page", 2.0),
                call(1.0, "product-catalog", "ListProducts"),
                call(0.7, "recommendation", "ListRecommendations"),
                call(0.6, "ad", "GetAds"),
                call(0.9, "currency", "GetSupportedCurrencies"),
                call(0.5, "cart", "GetCart"),
            ]),
            ep("GET /product/{id}", 3.0, &[
                call(1.0, "product-catalog", "GetProduct"),
                call(0.8, "reviews", "GET /reviews/{id}"),
                call(0.7, "recommendation", "ListRecommendations"),
                call(0.5, "ad", "GetAds"),
                call(0.9, "currency", "Convert"),
                internal(1.0, "render_page", 2.0),
            ]),
            ep("POST /api/cart", 2.0, &[call(1.0, "auth", VERIFY), call(1.0, "cart", "AddItem")]),
            ep("GET /api/cart", 2.0, &[
                call(1.0, "cart", "GetCart"),
                calln(0.8, 3, "currency", "Convert"),
                call(0.6, "shipping", "POST /get-quote"),
                call(0.5, "pricing", "POST /price/quote"),
            ]),
            ep("POST /api/checkout", 4.0, &[call(1.0, "auth", VERIFY), call(1.0, "checkout", "PlaceOrder")]),
            ep("GET /api/search", 2.0, &[
                internal(1.0, "parse_query", 0.3),
                call(1.0, "search", "GET /search"),
                call(0.5, "ad", "GetAds"),
            ]),
            ep("GET /api/profile", 2.0, &[
                call(1.0, "auth", VERIFY),
                call(1.0, "user-profile", "GET /users/{id}"),
            ]),
        ],
    },
    ServiceSpec {
        name: "product-catalog",
        version: "1.8.0",
        lang: "go",
        rpc: Rpc::Grpc("oteldemo.ProductCatalogService"),
        db: Some(("postgresql", "catalog")),
        endpoints: &[
            ep("ListProducts", 1.0, &[
                redis(0.8, "GET", "GET products:all"),
                sql(0.4, 1, "SELECT", "products", "SELECT id, name, description, price_units, categories FROM products ORDER BY id LIMIT 50", 4.0),
            ]),
            ep("GetProduct", 0.5, &[
                redis(0.9, "GET", "GET product:{id}"),
                sql(0.3, 1, "SELECT", "products", "SELECT id, name, description, price_units, categories FROM products WHERE id = {id}", 1.5),
                call(0.5, "inventory", "CheckStock"),
            ]),
            ep("SearchProducts", 1.0, &[
                sql(1.0, 1, "SELECT", "products", "SELECT id, name FROM products WHERE name ILIKE $1 LIMIT 20", 6.0),
            ]),
        ],
    },
    ServiceSpec {
        name: "cart",
        version: "1.4.2",
        lang: "dotnet",
        rpc: Rpc::Grpc("oteldemo.CartService"),
        db: Some(("redis", "0")),
        endpoints: &[
            ep("GetCart", 0.4, &[redis(1.0, "HGETALL", "HGETALL cart:{id}")]),
            ep("AddItem", 0.5, &[
                call(0.8, "product-catalog", "GetProduct"),
                redis(1.0, "HGET", "HGET cart:{id} items"),
                redis(1.0, "HSET", "HSET cart:{id} items ?"),
            ]),
            ep("EmptyCart", 0.3, &[redis(1.0, "DEL", "DEL cart:{id}")]),
        ],
    },
    ServiceSpec {
        name: "checkout",
        version: "1.9.1",
        lang: "go",
        rpc: Rpc::Grpc("oteldemo.CheckoutService"),
        db: Some(("postgresql", "orders")),
        endpoints: &[ep("PlaceOrder", 2.0, &[
            call(1.0, "cart", "GetCart"),
            call(1.0, "product-catalog", "GetProduct"),
            call(1.0, "currency", "Convert"),
            call(1.0, "payment", "POST /charge"),
            call(0.9, "inventory", "ReserveItems"),
            internal(1.0, "prepare_order_items", 0.5),
            sql(1.0, 1, "INSERT", "orders", "INSERT INTO orders (id, user_id, total_units, currency) VALUES ($1, $2, $3, $4)", 3.0),
            publish(1.0, "orders"),
            call(0.5, "shipping", "POST /ship-order"),
            call(0.9, "email", SEND_MAIL),
            call(1.0, "cart", "EmptyCart"),
        ])],
    },
    ServiceSpec {
        name: "payment",
        version: "1.3.0",
        lang: "nodejs",
        rpc: Rpc::Http,
        db: Some(("postgresql", "payments")),
        endpoints: &[ep("POST /charge", 8.0, &[
            internal(1.0, "validate_card", 0.4),
            sql(1.0, 1, "INSERT", "payments", "INSERT INTO payments (order_id, amount_units, card_last4) VALUES ($1, $2, $3)", 2.5),
        ])],
    },
    ServiceSpec {
        name: "currency",
        version: "1.2.0",
        lang: "cpp",
        rpc: Rpc::Grpc("oteldemo.CurrencyService"),
        db: None,
        endpoints: &[
            ep("GetSupportedCurrencies", 0.3, &[internal(0.5, "load_rates", 0.2)]),
            ep("Convert", 0.2, &[]),
        ],
    },
    ServiceSpec {
        name: "shipping",
        version: "1.1.4",
        lang: "rust",
        rpc: Rpc::Http,
        db: None,
        endpoints: &[
            ep("POST /get-quote", 0.8, &[call(1.0, "quote", "POST /getquote")]),
            ep("POST /ship-order", 1.0, &[internal(1.0, "create_tracking_id", 0.2)]),
        ],
    },
    ServiceSpec {
        name: "recommendation",
        version: "1.6.0",
        lang: "python",
        rpc: Rpc::Grpc("oteldemo.RecommendationService"),
        db: None,
        endpoints: &[ep("ListRecommendations", 4.0, &[
            call(1.0, "product-catalog", "ListProducts"),
            internal(1.0, "get_product_list", 1.0),
        ])],
    },
    ServiceSpec {
        name: "ad",
        version: "1.0.7",
        lang: "java",
        rpc: Rpc::Grpc("oteldemo.AdService"),
        db: None,
        endpoints: &[ep("GetAds", 1.5, &[internal(1.0, "getRandomAds", 0.5)])],
    },
    ServiceSpec {
        name: "auth",
        version: "3.0.2",
        lang: "go",
        rpc: Rpc::Http,
        db: Some(("postgresql", "users")),
        endpoints: &[ep(VERIFY, 0.6, &[
            redis(1.0, "GET", "GET session:{id}"),
            sql(0.1, 1, "SELECT", "users", "SELECT id, email, roles FROM users WHERE id = {id}", 1.2),
        ])],
    },
    ServiceSpec {
        name: "email",
        version: "1.0.3",
        lang: "ruby",
        rpc: Rpc::Http,
        db: None,
        endpoints: &[ep(SEND_MAIL, 5.0, &[
            internal(1.0, "render_template", 3.0),
            internal(1.0, "smtp_send", 20.0),
        ])],
    },
    ServiceSpec {
        name: "quote",
        version: "1.0.1",
        lang: "php",
        rpc: Rpc::Http,
        db: None,
        endpoints: &[ep("POST /getquote", 1.0, &[internal(1.0, "calculate_quote", 0.5)])],
    },
    ServiceSpec {
        name: "inventory",
        version: "2.2.0",
        lang: "java",
        rpc: Rpc::Grpc("oteldemo.InventoryService"),
        db: Some(("postgresql", "inventory")),
        endpoints: &[
            ep("CheckStock", 0.4, &[sql(1.0, 1, "SELECT", "stock", "SELECT quantity FROM stock WHERE product_id = {id}", 0.8)]),
            ep("ReserveItems", 0.6, &[sql(1.0, 3, "UPDATE", "stock", "UPDATE stock SET quantity = quantity - $1 WHERE product_id = {id}", 2.0)]),
        ],
    },
    ServiceSpec {
        name: "user-profile",
        version: "1.5.0",
        lang: "kotlin",
        rpc: Rpc::Http,
        db: Some(("postgresql", "users")),
        endpoints: &[ep("GET /users/{id}", 0.8, &[
            redis(0.7, "GET", "GET profile:{id}"),
            sql(0.6, 1, "SELECT", "profiles", "SELECT * FROM profiles WHERE user_id = {id}", 1.5),
        ])],
    },
    ServiceSpec {
        name: "search",
        version: "0.9.4",
        lang: "python",
        rpc: Rpc::Http,
        db: Some(("elasticsearch", "products")),
        endpoints: &[ep("GET /search", 2.0, &[
            sql(1.0, 1, "search", "products", "{\"query\":{\"match\":{\"name\":\"?\"}},\"size\":20}", 12.0),
            call(0.8, "product-catalog", "SearchProducts"),
        ])],
    },
    ServiceSpec {
        name: "reviews",
        version: "1.2.2",
        lang: "python",
        rpc: Rpc::Http,
        db: Some(("postgresql", "reviews")),
        endpoints: &[ep("GET /reviews/{id}", 1.5, &[
            sql(1.0, 1, "SELECT", "reviews", "SELECT author_id, rating, body FROM reviews WHERE product_id = {id} ORDER BY created_at DESC LIMIT 10", 3.0),
            call(0.5, "user-profile", "GET /users/{id}"),
        ])],
    },
    ServiceSpec {
        name: "pricing",
        version: "1.7.3",
        lang: "go",
        rpc: Rpc::Http,
        db: Some(("postgresql", "pricing")),
        endpoints: &[ep("POST /price/quote", 1.0, &[
            internal(1.0, "apply_discounts", 0.3),
            call(0.7, "currency", "Convert"),
            sql(0.5, 1, "SELECT", "promotions", "SELECT code, percent FROM promotions WHERE active AND product_id = {id}", 1.0),
        ])],
    },
    ServiceSpec {
        name: "notification",
        version: "1.0.0",
        lang: "go",
        rpc: Rpc::Http,
        db: None,
        endpoints: &[consume("orders", 0.5, &[
            internal(1.0, "build_notification", 0.3),
            call(0.8, "email", SEND_MAIL),
        ])],
    },
    ServiceSpec {
        name: "fraud-detection",
        version: "1.1.0",
        lang: "kotlin",
        rpc: Rpc::Http,
        db: Some(("postgresql", "fraud")),
        endpoints: &[consume("orders", 1.0, &[
            internal(1.0, "score_order", 4.0),
            sql(1.0, 1, "INSERT", "fraud_checks", "INSERT INTO fraud_checks (order_id, score) VALUES ($1, $2)", 1.5),
        ])],
    },
    ServiceSpec {
        name: "accounting",
        version: "1.0.2",
        lang: "dotnet",
        rpc: Rpc::Http,
        db: Some(("postgresql", "accounting")),
        endpoints: &[consume("orders", 0.5, &[
            sql(1.0, 2, "INSERT", "ledger_entries", "INSERT INTO ledger_entries (order_id, account, amount_units) VALUES ($1, $2, $3)", 2.0),
        ])],
    },
];
