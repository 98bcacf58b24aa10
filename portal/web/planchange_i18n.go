package web

// The plan-change pages' texts, kept beside their pages and merged into the catalogue when the
// package loads (before any template is parsed), so they are checked like every other key
// (TestCatalogueIsComplete).
var planChangeCatalog = map[string]map[string]string{
	"es": {
		"title.plan_change": "Cambiar de plan",
		"title.plan_review": "Revisá el cambio",

		"subscription.credit":                   "Saldo a favor",
		"subscription.payments":                 "Pagos de esta suscripción",
		"subscription.change.section":           "Plan",
		"subscription.change.section_body":      "Podés pasarte a otro plan o cambiar la cantidad. Antes de confirmar te mostramos cuánto se cobra o se acredita.",
		"subscription.change.link":              "Cambiar de plan",
		"subscription.change.pending":           "El %s se aplica el cambio de plan que elegiste.",
		"subscription.change.heading":           "Cambiar de plan",
		"subscription.change.current":           "Hoy tenés %s: %s %s.",
		"subscription.change.choose":            "Elegí el plan",
		"subscription.change.your_plan":         "tu plan actual",
		"subscription.change.max_quantity":      "hasta %d",
		"subscription.change.quantity":          "Cantidad",
		"subscription.change.hint_now":          "El cambio se aplica en cuanto lo confirmes; el resto del período se calcula al segundo.",
		"subscription.change.hint_period_end":   "El cambio se aplica al final del período actual; hasta entonces seguís con tu plan.",
		"subscription.change.review":            "Revisar el cambio",
		"subscription.change.back":              "Volver a la suscripción",
		"subscription.change.none":              "No hay otros planes disponibles para esta suscripción.",
		"subscription.change.review_heading":    "Revisá el cambio antes de confirmarlo",
		"subscription.change.updated":           "El importe se actualizó desde la última vez que lo viste. Revisalo de nuevo.",
		"subscription.change.from":              "Plan actual",
		"subscription.change.to":                "Plan nuevo",
		"subscription.change.charge_now":        "Hoy se cobran %s por lo que queda del período, hasta el %s.",
		"subscription.change.credit_used":       "Se usan %s de tu saldo a favor y se cobran %s a tu medio de pago.",
		"subscription.change.credit_now":        "Se acreditan %s a tu saldo a favor, que se descuenta de tus próximos cobros.",
		"subscription.change.nothing_now":       "Hoy no se cobra ni se acredita nada.",
		"subscription.change.then":              "Desde el %s se cobran %s.",
		"subscription.change.charge_new_period": "Hoy se cobran %s por el primer período del plan nuevo, hasta el %s.",
		"subscription.change.unused":            "Lo que queda sin usar de tu plan actual (%s) se descuenta del precio del plan nuevo (%s).",
		"subscription.change.new_period":        "El plan nuevo se cobra con otra frecuencia, así que el período empieza de nuevo hoy: el próximo cobro es el %s, de %s.",
		"subscription.change.hint_interval":     "Si elegís un plan que se cobra con otra frecuencia, el período de facturación empieza de nuevo.",
		"subscription.change.at_period_end":     "El cambio se aplica el %s y desde entonces se cobran %s. Hoy no se cobra nada.",
		"subscription.change.confirm":           "Confirmar el cambio",
		"subscription.change.back_to_choice":    "Elegir otro plan",
		"form.plan_choose":                      "Elegí uno de los planes de la lista.",
		"form.plan_same":                        "Ya tenés ese plan con esa cantidad. Elegí otro plan u otra cantidad.",
		"form.quantity_invalid":                 "Escribí la cantidad con números, desde 1.",
		"form.quantity_fixed":                   "En este portal no se puede cambiar la cantidad.",
		"form.quantity_above_max":               "La cantidad supera el máximo del plan.",
		"flash.plan_changed":                    "Listo, cambiaste tu plan.",
		"flash.plan_change_scheduled":           "Listo, el cambio de plan se aplica al final del período.",
		"flash.plan_changed_pay":                "Cambiaste tu plan. Falta pagar el cobro del cambio.",
		"error.subscription_canceled":           "La suscripción está cancelada: no se puede cambiar.",
	},
	"en": {
		"title.plan_change": "Change plan",
		"title.plan_review": "Review the change",

		"subscription.credit":                   "Credit balance",
		"subscription.payments":                 "Payments of this subscription",
		"subscription.change.section":           "Plan",
		"subscription.change.section_body":      "You can move to another plan or change the quantity. Before you confirm, we show you what is charged or credited.",
		"subscription.change.link":              "Change plan",
		"subscription.change.pending":           "The plan change you chose takes effect on %s.",
		"subscription.change.heading":           "Change plan",
		"subscription.change.current":           "You have %s: %s %s.",
		"subscription.change.choose":            "Choose the plan",
		"subscription.change.your_plan":         "your current plan",
		"subscription.change.max_quantity":      "up to %d",
		"subscription.change.quantity":          "Quantity",
		"subscription.change.hint_now":          "The change takes effect as soon as you confirm it; the rest of the period is prorated to the second.",
		"subscription.change.hint_period_end":   "The change takes effect at the end of the current period; until then you keep your plan.",
		"subscription.change.review":            "Review the change",
		"subscription.change.back":              "Back to the subscription",
		"subscription.change.none":              "No other plans are available for this subscription.",
		"subscription.change.review_heading":    "Review the change before you confirm it",
		"subscription.change.updated":           "The amount was updated since you last saw it. Please review it again.",
		"subscription.change.from":              "Current plan",
		"subscription.change.to":                "New plan",
		"subscription.change.charge_now":        "%s is charged today for the rest of the period, until %s.",
		"subscription.change.credit_used":       "%s comes from your credit balance and %s is charged to your payment method.",
		"subscription.change.credit_now":        "%s is credited to your balance, which is taken off your next charges.",
		"subscription.change.nothing_now":       "Nothing is charged or credited today.",
		"subscription.change.then":              "From %s you are charged %s.",
		"subscription.change.charge_new_period": "%s is charged today for the new plan's first period, until %s.",
		"subscription.change.unused":            "What is left unused of your current plan (%s) is taken off the new plan's price (%s).",
		"subscription.change.new_period":        "The new plan bills at another interval, so the period starts again today: the next charge is on %s, of %s.",
		"subscription.change.hint_interval":     "If you choose a plan that bills at another interval, the billing period starts again.",
		"subscription.change.at_period_end":     "The change takes effect on %s, and from then you are charged %s. Nothing is charged today.",
		"subscription.change.confirm":           "Confirm the change",
		"subscription.change.back_to_choice":    "Choose another plan",
		"form.plan_choose":                      "Choose one of the plans in the list.",
		"form.plan_same":                        "You already have that plan with that quantity. Choose another plan or quantity.",
		"form.quantity_invalid":                 "Write the quantity as a number, from 1.",
		"form.quantity_fixed":                   "The quantity cannot be changed in this portal.",
		"form.quantity_above_max":               "The quantity is above the plan's maximum.",
		"flash.plan_changed":                    "Done, your plan changed.",
		"flash.plan_change_scheduled":           "Done, the plan change takes effect at the end of the period.",
		"flash.plan_changed_pay":                "Your plan changed. The change's charge still needs paying.",
		"error.subscription_canceled":           "The subscription is canceled: it cannot be changed.",
	},
}

func init() {
	for locale, texts := range planChangeCatalog {
		for k, v := range texts {
			if _, dup := catalog[locale][k]; dup {
				panic("web: catalogue key " + k + " defined twice")
			}
			catalog[locale][k] = v
		}
	}
}
