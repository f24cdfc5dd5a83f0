"""The bill formats gpuledger reads, each mapped onto one line layout (billing_lines) in SQL.

One table per format: the warehouse column and the SQL that computes it from the file's own columns
(read as text, so a number is parsed once, as DECIMAL, never through a float). `{col}` names a
column that may be missing from a file (FOCUS 1.0 has no InvoiceId, a CUR 2.0 CSV may lack the
flattened product columns): it reads NULL then.

FOCUS 1.0-1.3 (AWS Data Exports, Azure Cost Management, Google Cloud's FOCUS export, OCI): the columns
of the spec; the instance type comes from SkuPriceDetails' `InstanceType` (FOCUS 1.1+), else AWS's
`x_UsageType` (`USE1-BoxUsage:p5.48xlarge`), else Azure's `x_SkuMeterSubcategory`/`x_SkuMeterName` VM size.
FOCUS 1.3's ServiceProviderName stands in for ProviderName.

AWS CUR 2.0: `line_item_*`, `reservation_*`, `savings_plan_*`, `pricing_*`. The effective cost of a line
is what FOCUS calls EffectiveCost: the amortised reservation cost of RI-covered usage
(reservation_effective_cost), the Savings Plan rate of SP-covered usage
(savings_plan_savings_plan_effective_cost), nothing for the SP negation lines and the recurring RI and
SP fees (their cost is in the covered usage; their unused part is kept as the fee's effective cost),
and the unblended cost of everything else (on-demand and spot usage at the price actually charged,
credits, refunds, taxes).
"""

from __future__ import annotations

from dataclasses import dataclass

DEC = "DECIMAL(38, 10)"


def _num(col: str) -> str:
    return f"TRY_CAST(nullif(trim({col}), '') AS {DEC})"


def _ts(col: str) -> str:
    """FOCUS and CUR times: ISO 8601 with Z or an offset, or a plain 'YYYY-MM-DD HH:MM:SS' (UTC). The common
    spellings are parsed by format (a third of the time a time-zone-aware cast takes), the rest by the cast."""
    common = "['%Y-%m-%dT%H:%M:%SZ', '%Y-%m-%dT%H:%M:%S.%fZ', '%Y-%m-%d %H:%M:%S', '%Y-%m-%dT%H:%M:%S']"
    return (
        f"coalesce(try_strptime({col}, {common}), "
        f"TRY_CAST(TRY_CAST(nullif(trim({col}), '') AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP))"
    )


def _text(col: str) -> str:
    return f"nullif(trim({col}), '')"


@dataclass(frozen=True)
class Format:
    name: str
    marker: str  # a column only this format has
    columns: dict[str, str]  # billing_lines column -> SQL over the file's columns ({Name} = maybe missing)
    required: tuple[str, ...]  # file columns without which a line cannot be read


_FOCUS_PROVIDER = "lower(coalesce({ServiceProviderName}, {ProviderName}, {InvoiceIssuerName}, ''))"
_AZURE_SIZE = "regexp_extract(coalesce({x_SkuMeterName}, {x_SkuMeterSubcategory}, ''), '(Standard_[A-Za-z0-9_]+)', 1)"
FOCUS = Format(
    "focus",
    "BilledCost",
    {
        "provider_name": _FOCUS_PROVIDER,
        "billing_period": "CAST(" + _ts("BillingPeriodStart") + " AS DATE)",
        "billing_account_id": _text("BillingAccountId"),
        "account_id": f"coalesce({_text('{SubAccountId}')}, {_text('BillingAccountId')})",
        "invoice_id": _text("{InvoiceId}"),
        "resource_id": _text("{ResourceId}"),
        "instance_type": (
            "coalesce(nullif(json_extract_string(TRY_CAST(nullif({SkuPriceDetails}, '') AS JSON), '$.InstanceType'), ''),"
            " nullif(regexp_extract(coalesce({x_UsageType}, ''), ':([a-z0-9][a-z0-9-]*\\.[a-z0-9]+)$', 1), ''),"
            f" nullif({_AZURE_SIZE}, ''))"
        ),
        "region": _text("{RegionId}"),
        "charge_category": _text("ChargeCategory"),
        "charge_class": _text("{ChargeClass}"),
        "pricing_category": _text("{PricingCategory}"),
        "charge_start": _ts("ChargePeriodStart"),
        "charge_end": _ts("ChargePeriodEnd"),
        "quantity": f"coalesce({_num('{ConsumedQuantity}')}, {_num('{PricingQuantity}')})",
        "unit": f"coalesce({_text('{ConsumedUnit}')}, {_text('{PricingUnit}')})",
        "billed_cost": _num("BilledCost"),
        "effective_cost": _num("EffectiveCost"),
        "list_cost": _num("{ListCost}"),
        "currency": _text("BillingCurrency"),
    },
    ("BilledCost", "EffectiveCost", "BillingCurrency", "BillingPeriodStart", "BillingAccountId", "ChargeCategory",
     "ChargePeriodStart", "ChargePeriodEnd"),
)  # fmt: skip

_CUR_TYPE = "coalesce(line_item_line_item_type, '')"
_CUR_CATEGORY = f"""CASE
    WHEN {_CUR_TYPE} IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation') THEN 'Usage'
    WHEN {_CUR_TYPE} IN ('Fee', 'RIFee', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee') THEN 'Purchase'
    WHEN {_CUR_TYPE} IN ('Credit', 'BundledDiscount', 'Discount', 'EdpDiscount', 'PrivateRateDiscount') THEN 'Credit'
    WHEN {_CUR_TYPE} = 'Refund' THEN 'Adjustment'
    WHEN {_CUR_TYPE} = 'Tax' THEN 'Tax'
    ELSE 'Adjustment' END"""
_UNBLENDED = _num("line_item_unblended_cost")
_CUR_EFFECTIVE = f"""CASE {_CUR_TYPE}
    WHEN 'DiscountedUsage' THEN {_num("{reservation_effective_cost}")}
    WHEN 'SavingsPlanCoveredUsage' THEN {_num("{savings_plan_savings_plan_effective_cost}")}
    WHEN 'SavingsPlanNegation' THEN 0
    WHEN 'RIFee' THEN coalesce({_num("{reservation_unused_amortized_upfront_fee_for_billing_period}")}, 0)
        + coalesce({_num("{reservation_unused_recurring_fee}")}, 0)
    WHEN 'SavingsPlanRecurringFee' THEN greatest(coalesce({_num("{savings_plan_total_commitment_to_date}")}, 0)
        - coalesce({_num("{savings_plan_used_commitment}")}, 0), 0)
    ELSE {_UNBLENDED} END"""
CUR2 = Format(
    "aws-cur2",
    "line_item_unblended_cost",
    {
        "provider_name": "'aws'",
        "billing_period": "CAST(" + _ts("bill_billing_period_start_date") + " AS DATE)",
        "billing_account_id": _text("{bill_payer_account_id}"),
        "account_id": _text("{line_item_usage_account_id}"),
        "invoice_id": _text("{bill_invoice_id}"),
        "resource_id": _text("{line_item_resource_id}"),
        "instance_type": (
            "coalesce(" + _text("{product_instance_type}") + ","
            " nullif(regexp_extract(coalesce({line_item_usage_type}, ''), ':([a-z0-9][a-z0-9-]*\\.[a-z0-9]+)$', 1), ''))"
        ),
        "region": _text("{product_region_code}"),
        "charge_category": _CUR_CATEGORY,
        "charge_class": "NULL",
        "pricing_category": f"""CASE WHEN {_CUR_TYPE} IN ('DiscountedUsage', 'SavingsPlanCoveredUsage') THEN 'Committed'
            WHEN coalesce({{line_item_usage_type}}, '') LIKE '%SpotUsage%' THEN 'Dynamic'
            WHEN {_CUR_TYPE} = 'Usage' THEN 'Standard' END""",
        "charge_start": _ts("line_item_usage_start_date"),
        "charge_end": _ts("line_item_usage_end_date"),
        "quantity": _num("{line_item_usage_amount}"),
        "unit": _text("{pricing_unit}"),
        "billed_cost": _UNBLENDED,
        "effective_cost": _CUR_EFFECTIVE,
        # the negation line undoes the covered usage's unblended cost, not its usage: no list cost of its own
        "list_cost": f"CASE WHEN {_CUR_TYPE} = 'SavingsPlanNegation' THEN 0 ELSE {_num('{pricing_public_on_demand_cost}')} END",
        "currency": _text("line_item_currency_code"),
    },
    ("line_item_unblended_cost", "line_item_line_item_type", "line_item_currency_code",
     "bill_billing_period_start_date", "line_item_usage_start_date", "line_item_usage_end_date"),
)  # fmt: skip

FORMATS = {f.name: f for f in (FOCUS, CUR2)}

# FOCUS ProviderName / ServiceProviderName (lower-cased) -> gpuledger's provider names
PROVIDERS = {
    "aws": "aws", "amazon web services": "aws", "amazon": "aws",
    "microsoft": "azure", "microsoft azure": "azure", "azure": "azure",
    "google cloud": "gcp", "google": "gcp", "google cloud platform": "gcp", "gcp": "gcp",
    "oracle": "oci", "oracle cloud infrastructure": "oci", "oci": "oci",
}  # fmt: skip


def detect(columns: set[str]) -> Format | None:
    """The format whose marker column the file has."""
    return next((f for f in FORMATS.values() if f.marker in columns), None)


def select_sql(fmt: Format, columns: set[str]) -> str:
    """The SELECT list mapping a file with these columns onto billing_lines' columns."""
    return ", ".join(f"{column_sql(fmt, columns, col)} AS {col}" for col in fmt.columns)


def column_sql(fmt: Format, columns: set[str], col: str) -> str:
    """One billing_lines column's SQL over a file with these columns (a missing optional column reads NULL)."""
    expr = fmt.columns[col]
    for name in _optional(expr):
        expr = expr.replace("{" + name + "}", f'src."{name}"' if name in columns else "CAST(NULL AS VARCHAR)")
    return expr


def _optional(expr: str) -> list[str]:
    out, i = [], expr.find("{")
    while i >= 0:
        j = expr.find("}", i)
        out.append(expr[i + 1 : j])
        i = expr.find("{", j)
    return out
