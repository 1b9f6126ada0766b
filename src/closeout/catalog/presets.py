"""Real-world refund policies, shipped as data. Figures follow the operators' published terms
(Octopus: HK$50 deposit, HK$11 handling fee when returned within 90 days of issue; Suica: ¥500
deposit, ¥220 handling fee taken from the balance only; Beijing Yikatong: ¥20 deposit refunded;
cross-border travel SIM: unused days refunded pro rata less a 10% administration fee)."""

PRODUCTS = [
    {
        "code": "OCTO",
        "name": "Octopus-like transit card",
        "kind": "stored_value",
        "currency": "HKD",
        "deposit": 5000,
        "number_prefix": "8101",
        "physical_return_required": True,
        "sla_working_days": 10,
        "calendar": "HK",
        "policy": {
            "code": "octopus",
            "name": "Octopus-like: HK$11 within 90 days of issue",
            "rules": {
                "deposit_refundable": True,
                "fees": [
                    {"code": "handling", "kind": "flat", "amount": 1100, "when": {"within_days_of_issue": 90}},
                ],
                "instant_refund_cap": 100000,
                "refund_approval_threshold": 100000,
            },
        },
    },
    {
        "code": "SUICA",
        "name": "Suica-like IC card",
        "kind": "stored_value",
        "currency": "JPY",
        "deposit": 500,
        "number_prefix": "8102",
        "physical_return_required": True,
        "sla_working_days": 5,
        "calendar": "JP",
        "policy": {
            "code": "suica",
            "name": "Suica-like: ¥220 from the balance",
            "rules": {
                "deposit_refundable": True,
                "fees": [{"code": "handling", "kind": "flat", "amount": 220, "base": "balance"}],
                "instant_refund_cap": 20000,
                "refund_approval_threshold": 20000,
            },
        },
    },
    {
        "code": "YKT",
        "name": "Yikatong-like city card",
        "kind": "stored_value",
        "currency": "CNY",
        "deposit": 2000,
        "number_prefix": "8103",
        "physical_return_required": False,
        "sla_working_days": 7,
        "calendar": "CN",
        "policy": {
            "code": "yikatong",
            "name": "Yikatong-like: dormancy fee after 3 years unused",
            "rules": {
                "deposit_refundable": True,
                "fees": [
                    {"code": "dormancy", "kind": "percent", "bp": 500, "minimum": 500, "maximum": 5000,
                     "base": "balance", "when": {"dormant_days_over": 1095}},
                ],
                "instant_refund_cap": 50000,
                "refund_approval_threshold": 50000,
            },
        },
    },
    {
        "code": "TSIM",
        "name": "Cross-border travel SIM",
        "kind": "travel_sim",
        "currency": "HKD",
        "deposit": 0,
        "number_prefix": "8985201",
        "physical_return_required": False,
        "sla_working_days": 5,
        "calendar": "HK",
        "policy": {
            "code": "travel-sim",
            "name": "Travel SIM: unused days pro rata less 10%",
            "rules": {
                "deposit_refundable": True,
                "fees": [],
                "plan_pro_rata": {"allowed": True, "fee_bp": 1000, "minimum": 0},
                "instant_refund_cap": 50000,
                "refund_approval_threshold": 50000,
            },
        },
    },
    {
        "code": "ESIM",
        "name": "Travel eSIM",
        "kind": "esim",
        "currency": "HKD",
        "deposit": 0,
        "number_prefix": "8985202",
        "physical_return_required": False,
        "sla_working_days": 3,
        "calendar": "HK",
        "policy": {
            "code": "travel-esim",
            "name": "Travel eSIM: unused days pro rata less 10%",
            "rules": {
                "deposit_refundable": True,
                "fees": [],
                "plan_pro_rata": {"allowed": True, "fee_bp": 1000, "minimum": 0},
                "instant_refund_cap": 50000,
                "refund_approval_threshold": 50000,
            },
        },
    },
]
