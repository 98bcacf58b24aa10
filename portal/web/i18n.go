package web

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/text/language"
)

// The portal speaks Spanish (Argentine usage, the default) and English. Every string a
// customer reads is here; ledger and payment errors bring their own Message(locale).

const defaultLocale = "es"

var locales = []string{"es", "en"}

// parseLocale accepts a supported language code ("es", "en", "es-AR"…).
func parseLocale(s string) (string, bool) {
	l := strings.ToLower(strings.TrimSpace(s))
	if i := strings.IndexAny(l, "-_"); i > 0 {
		l = l[:i]
	}
	for _, x := range locales {
		if l == x {
			return x, true
		}
	}
	return "", false
}

// normalizeLocale is parseLocale with the default for anything else.
func normalizeLocale(s string) string {
	if l, ok := parseLocale(s); ok {
		return l
	}
	return defaultLocale
}

// chooseLocale sets the visit's language: the switcher's ?lang= (remembered in a cookie), else
// the remembered choice, else the browser's preferred language among the portal's
// (Accept-Language), else the portal's branding.locale. False means it answered already: the
// switcher reloads the page without its parameter, so the address bar and bookmarks stay clean.
func chooseLocale(w http.ResponseWriter, v *visit) bool {
	r := v.r
	// Any page's language may come from the header (a first visit's does): say so, so that no
	// cache on the way serves a page in one visitor's language to another.
	w.Header().Add("Vary", "Accept-Language")
	if lang := r.URL.Query().Get("lang"); lang != "" && r.Method == http.MethodGet {
		if l, ok := parseLocale(lang); ok {
			v.locale = l
			v.cookies.set(w, cookieLang, l, 365*24*time.Hour)
			q := r.URL.Query()
			q.Del("lang")
			// The page's own path, which the visitor wrote: redirect keeps only a path on the
			// portal ("/%2Fevil.example/" decodes to "//evil.example/", another site).
			u := url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: q.Encode()}
			redirect(w, v, u.RequestURI())
			return false
		}
	}
	if l, ok := parseLocale(v.cookies.get(r, cookieLang)); ok {
		v.locale = l
		return true
	}
	if l, ok := acceptedLocale(r.Header.Values("Accept-Language")); ok {
		v.locale = l
		return true
	}
	v.locale = normalizeLocale(v.portal.Spec.Branding.Locale)
	return true
}

// localeMatcher picks among the portal's languages, in the order of locales.
var localeMatcher = func() language.Matcher {
	tags := make([]language.Tag, len(locales))
	for i, l := range locales {
		tags[i] = language.MustParse(l)
	}
	return language.NewMatcher(tags)
}()

// acceptedLocale is the portal language that best serves an Accept-Language header, by its
// q-values and CLDR's notion of which languages readers of another understand ("es-AR" and
// "es-419" read es, "en-GB" en; "fr" reads neither): false when none does well enough.
func acceptedLocale(headers []string) (string, bool) {
	if len(headers) == 0 {
		return "", false
	}
	h := strings.Join(headers, ",")
	if len(h) > 1024 {
		return "", false // no browser sends that much; not worth parsing
	}
	tags, _, err := language.ParseAcceptLanguage(h)
	if err != nil || len(tags) == 0 {
		return "", false
	}
	_, i, conf := localeMatcher.Match(tags...)
	if conf < language.High {
		return "", false
	}
	return locales[i], true
}

var catalog = map[string]map[string]string{
	"es": {
		"lang.name": "Español",

		"a11y.skip":     "Saltar al contenido",
		"a11y.language": "Idioma",
		"a11y.sections": "Secciones",

		"nav.overview":      "Resumen",
		"nav.methods":       "Medios de pago",
		"nav.subscriptions": "Suscripciones",
		"nav.billing":       "Facturación",
		"nav.payments":      "Pagos",
		"nav.signout":       "Cerrar sesión",
		"nav.return":        "← Volver a %s",

		"banner.label":  "Pagos pendientes",
		"banner.one":    "Tenés un pago que necesita tu atención.",
		"banner.many":   "Tenés %d pagos que necesitan tu atención.",
		"banner.action": "Ver pagos pendientes",

		"footer.help":    "¿Necesitás ayuda? Escribinos a",
		"footer.powered": "Portal de clientes con Portero",

		"title.overview":            "Resumen",
		"title.login":               "Ingresar",
		"title.code":                "Código de acceso",
		"title.choose":              "Elegí la cuenta",
		"title.link":                "Entrar al portal",
		"title.linkinvalid":         "Enlace no válido",
		"title.ended":               "Sesión terminada",
		"title.signedout":           "Sesión cerrada",
		"title.nopublic":            "Acceso con enlace",
		"title.error":               "Error",
		"title.methods":             "Medios de pago",
		"title.method_new":          "Agregar un medio de pago",
		"title.method_remove":       "Quitar medio de pago",
		"title.subscriptions":       "Suscripciones",
		"title.subscription":        "Suscripción",
		"title.subscription_cancel": "Cancelar suscripción",
		"title.billing":             "Datos de facturación",
		"title.payments":            "Historial de pagos",
		"title.payments_due":        "Pagos pendientes",
		"title.payment":             "Pago",
		"title.payment_pay":         "Completar pago",

		"login.heading":      "Ingresá a %s",
		"login.intro":        "Escribí tu correo electrónico y te enviamos un código para entrar. No necesitás contraseña.",
		"login.email":        "Correo electrónico",
		"login.submit":       "Enviarme un código",
		"login.code_wrong":   "El código no es correcto. Revisalo e intentá de nuevo.",
		"login.code_expired": "El código venció. Pedí uno nuevo.",

		"code.heading":       "Revisá tu correo",
		"code.sent_to":       "Si %s está registrado, te enviamos un código de acceso.",
		"code.check_spam":    "Puede tardar un minuto. Si no lo ves, revisá la carpeta de correo no deseado.",
		"code.send_failed":   "No pudimos enviar el código: el servidor de correo no responde. Probá reenviarlo en unos minutos.",
		"code.resent":        "Te enviamos un código nuevo.",
		"code.expired_hint":  "El código que te enviamos venció. Pedí uno nuevo.",
		"code.label":         "Código de %d dígitos",
		"code.attempts_left": "Te quedan %d intentos.",
		"code.submit":        "Ingresar",
		"code.resend":        "Enviarme otro código",
		"code.resend_wait":   "Podés pedir otro código en %d segundos.",
		"code.other_email":   "Usar otro correo",
		"code.locked":        "Hubo demasiados intentos con un código incorrecto. Por seguridad, este código ya no sirve.",
		"code.start_again":   "Empezar de nuevo",

		"choose.heading":    "Elegí la cuenta",
		"choose.intro":      "Tu correo está asociado a más de una cuenta. Elegí con cuál querés entrar.",
		"choose.legend":     "Cuentas",
		"choose.account_id": "cuenta %s",
		"choose.submit":     "Continuar",

		"link.heading":  "Entrar a %s",
		"link.intro":    "Este enlace te da acceso a tu cuenta sin contraseña.",
		"link.expires":  "El enlace vence el %s.",
		"link.continue": "Continuar",
		"link.why":      "Te pedimos confirmar para que el enlace no se use solo al abrirse en una vista previa del correo.",

		"linkinvalid.unknown.heading": "Este enlace no es válido",
		"linkinvalid.unknown.body":    "Revisá que lo hayas copiado completo.",
		"linkinvalid.expired.heading": "Este enlace venció",
		"linkinvalid.expired.body":    "Los enlaces de acceso duran un tiempo limitado.",
		"linkinvalid.revoked.heading": "Este enlace ya no funciona",
		"linkinvalid.revoked.body":    "El enlace fue dado de baja.",
		"linkinvalid.use_email":       "Podés entrar con tu correo electrónico y un código.",
		"linkinvalid.login":           "Ingresar con mi correo",
		"linkinvalid.ask_merchant":    "Pedile un enlace nuevo a quien te lo envió.",

		"linkinvalid.recover_intro": "Te mandamos un código a tu correo para entrar y seguir donde te llevaba el enlace.",

		"title.receipt": "Comprobante de pago",
		"receipt.view":  "Ver comprobante",
		"receipt.pdf":   "Descargar PDF",
		"receipt.print": "Para imprimirlo, usá la opción Imprimir de tu navegador.",
		"receipt.back":  "Volver al pago",

		"ended.heading": "Tu sesión terminó",
		"ended.body":    "Por seguridad, la sesión se cierra después de un tiempo sin uso o cuando el enlace de acceso vence o se da de baja.",
		"ended.login":   "Volver a ingresar",

		"signedout.heading": "Cerraste sesión",
		"signedout.body":    "Podés cerrar esta ventana.",

		"signedout.link_disabled":    "El enlace de acceso con el que entraste quedó desactivado: si necesitás volver, pedí uno nuevo.",
		"signedout.link_still_works": "No pudimos desactivar el enlace de acceso con el que entraste: todavía abre el portal hasta el %s. Si esta computadora es compartida, borrá el historial del navegador.",

		"nopublic.heading": "Este portal se abre con un enlace",
		"nopublic.body":    "Para entrar, usá el enlace de acceso que te enviaron por correo o desde la aplicación.",
		"nopublic.support": "Si no lo tenés, escribinos a",

		"overview.hello":             "Hola, %s",
		"overview.due":               "Necesitan tu atención",
		"overview.methods":           "Medio de pago preferido",
		"overview.methods_count":     "Medios de pago guardados: %d",
		"overview.manage_methods":    "Administrar medios de pago",
		"overview.subscriptions":     "Suscripciones activas",
		"overview.see_subscriptions": "Ver suscripciones",
		"overview.billing":           "Datos de facturación",
		"overview.billing_empty":     "Todavía no cargaste tus datos de facturación.",
		"overview.edit_billing":      "Editar datos de facturación",
		"overview.recent":            "Últimos pagos",
		"overview.see_payments":      "Ver historial",

		"methods.intro":            "El primer medio de la lista es el preferido: todos los cobros futuros se hacen con él.",
		"methods.preferred":        "Preferido",
		"methods.none":             "No tenés medios de pago guardados.",
		"methods.expires":          "Vence %s",
		"methods.expired":          "Venció %s",
		"methods.not_accepted":     "Este portal no acepta este tipo de medio.",
		"methods.make_preferred":   "Hacer preferido",
		"methods.move_up":          "Subir",
		"methods.move_up_label":    "Subir %s",
		"methods.move_down":        "Bajar",
		"methods.move_down_label":  "Bajar %s",
		"methods.remove":           "Quitar",
		"methods.remove_label":     "Quitar %s",
		"methods.add":              "Agregar un medio de pago",
		"methods.no_types":         "Este portal no permite agregar medios de pago.",
		"methods.remove_heading":   "¿Quitar %s?",
		"methods.remove_body":      "No se va a usar más para tus cobros. Tus pagos anteriores no cambian.",
		"methods.remove_preferred": "Es tu medio preferido: si lo quitás, %s pasa a ser el preferido.",
		"methods.remove_confirm":   "Sí, quitarlo",

		"method.card":                  "Tarjeta de crédito o débito",
		"method.card.hint":             "Visa, Mastercard, American Express, Cabal, Naranja",
		"method.direct_debit":          "Débito automático en cuenta bancaria (CBU)",
		"method.direct_debit.hint":     "Cobramos de tu cuenta bancaria con tu CBU",
		"method.cvu":                   "Débito en cuenta virtual (CVU)",
		"method.cvu.hint":              "Mercado Pago, Ualá y otras billeteras con CVU",
		"method.bank_transfer":         "Transferencia bancaria",
		"method.bank_transfer.hint":    "Transferís vos en cada cobro",
		"method.bank_transfer.explain": "En cada cobro te mostramos los datos para transferir. El pago queda pendiente hasta que recibimos la transferencia.",
		"method.qr":                    "Pago con QR",
		"method.qr.hint":               "Escaneás un código QR en cada cobro",
		"method.qr.explain":            "En cada cobro te mostramos un código QR para pagar desde tu billetera. El pago queda pendiente hasta que se acredita.",
		"method.wallet":                "Billetera virtual",
		"method.wallet.hint":           "Mercado Pago, MODO, Ualá, Naranja X",
		"method.wallet.explain":        "Vas a autorizar los cobros desde tu billetera.",
		"method.add_submit":            "Agregar",
		"method.add_type":              "Agregar: %s",

		"card.number":               "Número de tarjeta",
		"card.holder":               "Nombre como figura en la tarjeta",
		"card.exp_month":            "Mes de vencimiento",
		"card.exp_year":             "Año de vencimiento",
		"card.exp_year_placeholder": "AAAA",
		"card.cvc":                  "Código de seguridad",
		"card.cvc_hint":             "3 dígitos al dorso (4 al frente en American Express).",
		"card.safety":               "No guardamos el número completo ni el código de seguridad: la tarjeta se registra con el procesador de pagos.",

		"account.direct_debit":      "CBU",
		"account.direct_debit.hint": "Son 22 dígitos. Lo encontrás en el home banking.",
		"account.cvu":               "CVU",
		"account.cvu.hint":          "Son 22 dígitos y empieza con 000. Lo encontrás en tu billetera.",

		"pay.submit":  "Pagar",
		"pay.heading": "Pagar %s",

		"action.cancel": "Cancelar",

		"interval.week":  "por semana",
		"interval.month": "por mes",
		"interval.year":  "por año",

		"subscription.status.active":   "Activa",
		"subscription.status.past_due": "Pago pendiente",
		"subscription.status.canceled": "Cancelada",

		"subscriptions.none":        "No tenés suscripciones.",
		"subscriptions.none_active": "No tenés suscripciones activas.",

		"subscription.amount":                 "Importe",
		"subscription.renews":                 "Próxima renovación",
		"subscription.renews_on":              "se renueva el %s",
		"subscription.ends":                   "Termina",
		"subscription.ends_on":                "termina el %s",
		"subscription.ended":                  "Terminó",
		"subscription.ended_on":               "terminó el %s",
		"subscription.method":                 "Medio de pago",
		"subscription.preferred_method":       "Tu medio de pago preferido",
		"subscription.pays_with":              "Se cobra con %s",
		"subscription.pays_with_preferred":    "Se cobra con tu medio de pago preferido",
		"subscription.change_method":          "Cambiar el medio de pago",
		"subscription.use_preferred":          "Usar siempre mi medio de pago preferido",
		"subscription.save_method":            "Guardar",
		"subscription.add_method":             "Agregar otro medio",
		"subscription.cancel_heading":         "Cancelar la suscripción",
		"subscription.cancel":                 "Cancelar suscripción",
		"subscription.cancel_scheduled":       "La suscripción se cancela el %s. Hasta entonces la seguís teniendo.",
		"subscription.resume":                 "No cancelar",
		"subscription.cancel_confirm_heading": "¿Cancelar %s?",
		"subscription.cancel_now_body":        "La suscripción termina ahora mismo.",
		"subscription.cancel_end_body":        "La seguís teniendo hasta el %s y no se vuelve a cobrar.",
		"subscription.reason":                 "¿Por qué cancelás?",
		"subscription.cancel_submit":          "Cancelar suscripción",
		"subscription.keep":                   "Mantenerla",

		"billing.intro":              "Estos datos figuran en tus facturas.",
		"billing.tax_legend":         "Datos fiscales",
		"billing.legal_name":         "Razón social o nombre completo",
		"billing.tax_id":             "CUIT / CUIL",
		"billing.tax_id_hint":        "11 dígitos, con o sin guiones.",
		"billing.tax_condition":      "Condición frente al IVA",
		"billing.tax_condition_none": "Sin indicar",
		"billing.address_legend":     "Domicilio fiscal",
		"billing.line1":              "Calle y número",
		"billing.line2":              "Piso, departamento (opcional)",
		"billing.city":               "Localidad",
		"billing.province":           "Provincia",
		"billing.postal_code":        "Código postal",
		"billing.country":            "País (código de 2 letras)",
		"billing.save":               "Guardar",

		"tax.consumidor_final":      "Consumidor final",
		"tax.responsable_inscripto": "Responsable inscripto",
		"tax.monotributista":        "Monotributista",
		"tax.exento":                "Exento",

		"payments.none": "Todavía no hay pagos.",
		"payments.more": "Ver pagos anteriores",

		"due.intro": "Estos pagos esperan una acción tuya.",
		"due.none":  "No tenés pagos pendientes.",

		"payment.untitled":               "Pago",
		"payment.description":            "Concepto",
		"payment.amount":                 "Importe",
		"payment.status":                 "Estado",
		"payment.date":                   "Fecha",
		"payment.period":                 "Período",
		"payment.method":                 "Medio de pago",
		"payment.status.incomplete":      "Falta medio de pago",
		"payment.status.requires_action": "Falta confirmarlo",
		"payment.requires_action":        "Tu banco pide que confirmes este pago antes de cobrarlo.",
		"payment.authenticate":           "Confirmar el pago con mi banco",
		"payment.wallet_waiting":         "Este pago se hace con tu cuenta de Mercado Pago: pagalo en su página y volvés acá.",
		"payment.wallet_pay":             "Pagar con Mercado Pago",
		"title.card_fields":              "Agregar una tarjeta",
		"fields.intro":                   "Los datos de la tarjeta se escriben en los campos seguros de Mercado Pago: este portal no los ve ni los guarda.",
		"fields.back":                    "Volver",
		"fields.number":                  "Número de tarjeta",
		"fields.expiry":                  "Vencimiento (MM/AA)",
		"fields.code":                    "Código de seguridad",
		"fields.holder":                  "Nombre como figura en la tarjeta",
		"fields.doc_type":                "Tipo de documento",
		"fields.doc_number":              "Número de documento",
		"fields.submit":                  "Guardar tarjeta",
		"fields.cancel":                  "Cancelar",
		"fields.error":                   "Mercado Pago no pudo validar la tarjeta. Revisá los datos e intentá de nuevo.",
		"fields.noscript":                "Para cargar una tarjeta hace falta JavaScript: los campos son de Mercado Pago.",
		"fields.secure":                  "Mercado Pago guarda la tarjeta; el portal recibe solo un código para cobrarla.",
		"error.card_fields_refused":      "Este portal no recibe datos de tarjeta: las tarjetas se cargan en la página segura del procesador de pagos. Volvé a Medios de pago y elegí Tarjeta.",
		"error.processor_unavailable":    "No pudimos comunicarnos con el procesador de pagos y no se guardó nada. Probá de nuevo en unos minutos.",
		"payment.status.processing":      "Procesando",
		"payment.status.pending":         "Esperando el pago",
		"payment.status.closed":          "Anulado",
		"payment.closed":                 "La suscripción se canceló antes de este pago: no se va a cobrar.",
		"payment.status.succeeded":       "Aprobado",
		"payment.status.failed":          "Rechazado",
		"payment.succeeded":              "Este pago está aprobado.",
		"payment.result.succeeded":       "¡Listo! El pago se aprobó.",
		"payment.pending":                "Estamos esperando que se acredite el pago.",
		"payment.processing":             "Estamos procesando el pago.",
		"payment.refresh":                "Actualizar",
		"payment.failed":                 "El pago fue rechazado.",
		"payment.incomplete":             "Para completar este pago, agregá un medio de pago.",
		"payment.instructions":           "Cómo pagar",
		"payment.qr_intro":               "Pagá con tu billetera usando este código:",
		"payment.qr_scan":                "Escaneá este código QR con la app de tu billetera o de tu banco:",
		"payment.qr_label":               "Código QR para pagar",
		"payment.qr_paste":               "Si tu billetera acepta códigos pegados, copiá este:",
		"payment.pay_again":              "Pagar con otro medio",
		"payment.failed_contact":         "Para pagarlo con otro medio, comunicate con nosotros.",
		"payment.complete":               "Completar el pago",
		"payment.choose_method":          "Elegí cómo querés pagar.",
		"payment.attempts":               "Intentos de cobro",

		"flash.method_added":                     "Agregamos el medio de pago.",
		"flash.method_removed":                   "Quitamos el medio de pago.",
		"flash.order_saved":                      "Guardamos el nuevo orden.",
		"flash.preferred_changed":                "Cambiamos tu medio de pago preferido.",
		"flash.subscription_method_saved":        "Guardamos el medio de pago de la suscripción.",
		"flash.subscription_canceled":            "Cancelamos la suscripción.",
		"flash.subscription_canceled_period_end": "La suscripción se va a cancelar al final del período.",
		"flash.subscription_resumed":             "La suscripción sigue activa.",
		"flash.billing_saved":                    "Guardamos tus datos de facturación.",
		"flash.payment_submitted":                "Recibimos tu medio de pago.",

		"form.fix_errors":      "Revisá los campos marcados.",
		"form.required":        "Este campo es obligatorio.",
		"form.optional":        "opcional",
		"form.email_invalid":   "Escribí un correo electrónico válido, por ejemplo nombre@ejemplo.com.",
		"form.code_format":     "El código tiene solo números. Copialo tal como llegó.",
		"form.choose_account":  "Elegí una de las cuentas.",
		"form.wallet_choose":   "Elegí tu billetera.",
		"form.method_type":     "Elegí un tipo de medio de pago.",
		"form.exp_month":       "Escribí el mes con números, del 1 al 12.",
		"form.exp_year":        "Escribí el año con números, por ejemplo 2030.",
		"form.text_invalid":    "Revisá este dato: es demasiado largo o tiene caracteres no permitidos.",
		"form.country":         "Usá el código de país de 2 letras, por ejemplo AR.",
		"form.choose_option":   "Elegí una de las opciones.",
		"form.tax_id_required": "Con esta condición frente al IVA, el CUIT es obligatorio.",
		"form.reason_invalid":  "El motivo puede tener hasta 500 caracteres.",

		"error.home":                         "Ir al inicio",
		"error.heading.400":                  "No pudimos entender el pedido",
		"error.heading.401":                  "Tenés que ingresar",
		"error.heading.403":                  "No podés hacer esto",
		"error.heading.404":                  "No encontramos lo que buscás",
		"error.heading.409":                  "No se pudo completar",
		"error.heading.410":                  "Ya no está disponible",
		"error.heading.413":                  "El formulario es demasiado grande",
		"error.heading.422":                  "No se pudo completar",
		"error.heading.429":                  "Demasiados intentos",
		"error.heading.500":                  "Algo salió mal",
		"error.heading.503":                  "El portal no está disponible",
		"error.not_found":                    "La página no existe o no es de tu cuenta.",
		"error.signed_out":                   "Tu sesión terminó. Volvé a ingresar para seguir.",
		"error.choose_first":                 "Primero elegí con qué cuenta querés entrar.",
		"error.forbidden":                    "Esta sección no está habilitada en este portal.",
		"error.too_large":                    "El formulario enviado es demasiado grande.",
		"error.bad_request":                  "El formulario enviado no es válido.",
		"error.csrf":                         "El formulario venció o no vino de este portal. Volvé a la página e intentá de nuevo.",
		"error.csrf_pre":                     "El formulario venció o no vino de este portal. Volvé a la página e intentá de nuevo (las cookies tienen que estar habilitadas).",
		"error.rate_limited":                 "Hubo demasiados intentos en poco tiempo. Esperá unos minutos y volvé a probar.",
		"error.internal":                     "Ocurrió un error inesperado. Intentá de nuevo en unos minutos.",
		"error.unavailable":                  "El portal no está disponible en este momento. Intentá de nuevo en unos minutos.",
		"error.no_account":                   "No encontramos una cuenta para este acceso. Escribinos si necesitás ayuda.",
		"error.link_customer_unknown":        "El enlace no corresponde a ninguna cuenta. Pedile un enlace nuevo a quien te lo envió.",
		"error.method_not_allowed":           "Este portal no acepta ese medio de pago.",
		"error.method_not_allowed_preferred": "Ese medio no puede ser el preferido en este portal porque no acepta ese tipo de medio.",
		"error.payment_not_payable":          "Este pago ya no necesita un medio de pago.",

		"mail.code_subject": "Tu código para entrar a %s",
		"mail.code_intro":   "Tu código para entrar a %s es:",
		"mail.code_expiry":  "Vence en %d minutos y sirve una sola vez. No lo compartas con nadie.",
		"mail.code_ignore":  "Si no pediste este código, ignorá este mensaje: nadie puede entrar sin él.",
		"mail.code_support": "¿Necesitás ayuda? Escribinos a %s.",
	},
	"en": {
		"lang.name": "English",

		"a11y.skip":     "Skip to content",
		"a11y.language": "Language",
		"a11y.sections": "Sections",

		"nav.overview":      "Overview",
		"nav.methods":       "Payment methods",
		"nav.subscriptions": "Subscriptions",
		"nav.billing":       "Billing",
		"nav.payments":      "Payments",
		"nav.signout":       "Sign out",
		"nav.return":        "← Back to %s",

		"banner.label":  "Payments due",
		"banner.one":    "One payment needs your attention.",
		"banner.many":   "%d payments need your attention.",
		"banner.action": "See payments due",

		"footer.help":    "Need help? Write to",
		"footer.powered": "Customer portal by Portero",

		"title.overview":            "Overview",
		"title.login":               "Sign in",
		"title.code":                "Sign-in code",
		"title.choose":              "Choose the account",
		"title.link":                "Open the portal",
		"title.linkinvalid":         "Link not valid",
		"title.ended":               "Session ended",
		"title.signedout":           "Signed out",
		"title.nopublic":            "Access by link",
		"title.error":               "Error",
		"title.methods":             "Payment methods",
		"title.method_new":          "Add a payment method",
		"title.method_remove":       "Remove payment method",
		"title.subscriptions":       "Subscriptions",
		"title.subscription":        "Subscription",
		"title.subscription_cancel": "Cancel subscription",
		"title.billing":             "Billing information",
		"title.payments":            "Payment history",
		"title.payments_due":        "Payments due",
		"title.payment":             "Payment",
		"title.payment_pay":         "Complete payment",

		"login.heading":      "Sign in to %s",
		"login.intro":        "Enter your e-mail address and we will send you a code to sign in. No password needed.",
		"login.email":        "E-mail address",
		"login.submit":       "Send me a code",
		"login.code_wrong":   "That code is not right. Check it and try again.",
		"login.code_expired": "The code has expired. Ask for a new one.",

		"code.heading":       "Check your e-mail",
		"code.sent_to":       "If %s is registered, we have sent it a sign-in code.",
		"code.check_spam":    "It may take a minute. If you do not see it, check your spam folder.",
		"code.send_failed":   "We could not send the code: the mail server is not answering. Try sending it again in a few minutes.",
		"code.resent":        "We sent you a new code.",
		"code.expired_hint":  "The code we sent has expired. Ask for a new one.",
		"code.label":         "%d-digit code",
		"code.attempts_left": "%d tries left.",
		"code.submit":        "Sign in",
		"code.resend":        "Send me another code",
		"code.resend_wait":   "You can ask for another code in %d seconds.",
		"code.other_email":   "Use another e-mail address",
		"code.locked":        "There were too many tries with a wrong code. For your security, this code no longer works.",
		"code.start_again":   "Start again",

		"choose.heading":    "Choose the account",
		"choose.intro":      "Your e-mail address belongs to more than one account. Choose the one to open.",
		"choose.legend":     "Accounts",
		"choose.account_id": "account %s",
		"choose.submit":     "Continue",

		"link.heading":  "Open %s",
		"link.intro":    "This link opens your account without a password.",
		"link.expires":  "The link expires on %s.",
		"link.continue": "Continue",
		"link.why":      "We ask you to confirm so that the link is not used up by an e-mail preview opening it.",

		"linkinvalid.unknown.heading": "This link is not valid",
		"linkinvalid.unknown.body":    "Check that you copied all of it.",
		"linkinvalid.expired.heading": "This link has expired",
		"linkinvalid.expired.body":    "Access links work for a limited time.",
		"linkinvalid.revoked.heading": "This link no longer works",
		"linkinvalid.revoked.body":    "The link was revoked.",
		"linkinvalid.use_email":       "You can sign in with your e-mail address and a code.",
		"linkinvalid.login":           "Sign in with my e-mail",
		"linkinvalid.ask_merchant":    "Ask whoever sent you the link for a new one.",

		"linkinvalid.recover_intro": "We can e-mail you a code to sign in and carry on where the link was taking you.",

		"title.receipt": "Payment receipt",
		"receipt.view":  "View receipt",
		"receipt.pdf":   "Download PDF",
		"receipt.print": "To print it, use your browser's Print option.",
		"receipt.back":  "Back to the payment",

		"ended.heading": "Your session has ended",
		"ended.body":    "For your security, sessions end after a while without use, or when the access link expires or is revoked.",
		"ended.login":   "Sign in again",

		"signedout.heading": "You are signed out",
		"signedout.body":    "You can close this window.",

		"signedout.link_disabled":    "The access link you signed in with has been disabled: if you need to come back, ask for a new one.",
		"signedout.link_still_works": "We could not disable the access link you signed in with: it still opens the portal until %s. If this computer is shared, clear the browser's history.",

		"nopublic.heading": "This portal opens with a link",
		"nopublic.body":    "To get in, use the access link you were sent by e-mail or from the app.",
		"nopublic.support": "If you do not have it, write to",

		"overview.hello":             "Hello, %s",
		"overview.due":               "Needs your attention",
		"overview.methods":           "Preferred payment method",
		"overview.methods_count":     "Saved payment methods: %d",
		"overview.manage_methods":    "Manage payment methods",
		"overview.subscriptions":     "Active subscriptions",
		"overview.see_subscriptions": "See subscriptions",
		"overview.billing":           "Billing information",
		"overview.billing_empty":     "You have not entered your billing information yet.",
		"overview.edit_billing":      "Edit billing information",
		"overview.recent":            "Recent payments",
		"overview.see_payments":      "See history",

		"methods.intro":            "The first method in the list is your preferred one: every future charge uses it.",
		"methods.preferred":        "Preferred",
		"methods.none":             "You have no saved payment methods.",
		"methods.expires":          "Expires %s",
		"methods.expired":          "Expired %s",
		"methods.not_accepted":     "This portal does not accept this kind of method.",
		"methods.make_preferred":   "Make preferred",
		"methods.move_up":          "Up",
		"methods.move_up_label":    "Move %s up",
		"methods.move_down":        "Down",
		"methods.move_down_label":  "Move %s down",
		"methods.remove":           "Remove",
		"methods.remove_label":     "Remove %s",
		"methods.add":              "Add a payment method",
		"methods.no_types":         "This portal does not allow adding payment methods.",
		"methods.remove_heading":   "Remove %s?",
		"methods.remove_body":      "It will no longer be used for your charges. Your past payments do not change.",
		"methods.remove_preferred": "It is your preferred method: if you remove it, %s becomes the preferred one.",
		"methods.remove_confirm":   "Yes, remove it",

		"method.card":                  "Credit or debit card",
		"method.card.hint":             "Visa, Mastercard, American Express, Cabal, Naranja",
		"method.direct_debit":          "Bank account direct debit (CBU)",
		"method.direct_debit.hint":     "We debit your bank account using your CBU",
		"method.cvu":                   "Virtual account debit (CVU)",
		"method.cvu.hint":              "Mercado Pago, Ualá and other wallets with a CVU",
		"method.bank_transfer":         "Bank transfer",
		"method.bank_transfer.hint":    "You transfer the amount of each charge",
		"method.bank_transfer.explain": "For each charge we show you the details to transfer to. The payment stays pending until the transfer arrives.",
		"method.qr":                    "QR payment",
		"method.qr.hint":               "You scan a QR code for each charge",
		"method.qr.explain":            "For each charge we show you a QR code to pay from your wallet. The payment stays pending until it is credited.",
		"method.wallet":                "Digital wallet",
		"method.wallet.hint":           "Mercado Pago, MODO, Ualá, Naranja X",
		"method.wallet.explain":        "You will authorise the charges from your wallet.",
		"method.add_submit":            "Add",
		"method.add_type":              "Add: %s",

		"card.number":               "Card number",
		"card.holder":               "Name as shown on the card",
		"card.exp_month":            "Expiry month",
		"card.exp_year":             "Expiry year",
		"card.exp_year_placeholder": "YYYY",
		"card.cvc":                  "Security code",
		"card.cvc_hint":             "3 digits on the back (4 on the front for American Express).",
		"card.safety":               "We do not keep the full number or the security code: the card is registered with the payment processor.",

		"account.direct_debit":      "CBU",
		"account.direct_debit.hint": "22 digits. You will find it in your online banking.",
		"account.cvu":               "CVU",
		"account.cvu.hint":          "22 digits, starting with 000. You will find it in your wallet.",

		"pay.submit":  "Pay",
		"pay.heading": "Pay %s",

		"action.cancel": "Cancel",

		"interval.week":  "per week",
		"interval.month": "per month",
		"interval.year":  "per year",

		"subscription.status.active":   "Active",
		"subscription.status.past_due": "Payment due",
		"subscription.status.canceled": "Canceled",

		"subscriptions.none":        "You have no subscriptions.",
		"subscriptions.none_active": "You have no active subscriptions.",

		"subscription.amount":                 "Amount",
		"subscription.renews":                 "Next renewal",
		"subscription.renews_on":              "renews on %s",
		"subscription.ends":                   "Ends",
		"subscription.ends_on":                "ends on %s",
		"subscription.ended":                  "Ended",
		"subscription.ended_on":               "ended on %s",
		"subscription.method":                 "Payment method",
		"subscription.preferred_method":       "Your preferred payment method",
		"subscription.pays_with":              "Charged to %s",
		"subscription.pays_with_preferred":    "Charged to your preferred payment method",
		"subscription.change_method":          "Change the payment method",
		"subscription.use_preferred":          "Always use my preferred payment method",
		"subscription.save_method":            "Save",
		"subscription.add_method":             "Add another method",
		"subscription.cancel_heading":         "Cancel the subscription",
		"subscription.cancel":                 "Cancel subscription",
		"subscription.cancel_scheduled":       "The subscription will be canceled on %s. You keep it until then.",
		"subscription.resume":                 "Don't cancel",
		"subscription.cancel_confirm_heading": "Cancel %s?",
		"subscription.cancel_now_body":        "The subscription ends right away.",
		"subscription.cancel_end_body":        "You keep it until %s and you will not be charged again.",
		"subscription.reason":                 "Why are you canceling?",
		"subscription.cancel_submit":          "Cancel subscription",
		"subscription.keep":                   "Keep it",

		"billing.intro":              "This information appears on your invoices.",
		"billing.tax_legend":         "Tax details",
		"billing.legal_name":         "Legal name",
		"billing.tax_id":             "CUIT / CUIL",
		"billing.tax_id_hint":        "11 digits, with or without dashes.",
		"billing.tax_condition":      "VAT status",
		"billing.tax_condition_none": "Not specified",
		"billing.address_legend":     "Billing address",
		"billing.line1":              "Street and number",
		"billing.line2":              "Floor, apartment (optional)",
		"billing.city":               "City",
		"billing.province":           "Province",
		"billing.postal_code":        "Postal code",
		"billing.country":            "Country (2-letter code)",
		"billing.save":               "Save",

		"tax.consumidor_final":      "Final consumer",
		"tax.responsable_inscripto": "VAT registered",
		"tax.monotributista":        "Monotributo (simplified regime)",
		"tax.exento":                "Exempt",

		"payments.none": "No payments yet.",
		"payments.more": "See older payments",

		"due.intro": "These payments are waiting for you.",
		"due.none":  "You have no payments due.",

		"payment.untitled":               "Payment",
		"payment.description":            "Description",
		"payment.amount":                 "Amount",
		"payment.status":                 "Status",
		"payment.date":                   "Date",
		"payment.period":                 "Period",
		"payment.method":                 "Payment method",
		"payment.status.incomplete":      "Needs a payment method",
		"payment.status.requires_action": "Needs your confirmation",
		"payment.requires_action":        "Your bank asks you to confirm this payment before it is charged.",
		"payment.authenticate":           "Confirm the payment with my bank",
		"payment.wallet_waiting":         "This payment is made with your Mercado Pago account: pay it on their page and you come back here.",
		"payment.wallet_pay":             "Pay with Mercado Pago",
		"title.card_fields":              "Add a card",
		"fields.intro":                   "The card details are typed in Mercado Pago's secure fields: this portal never sees or stores them.",
		"fields.back":                    "Back",
		"fields.number":                  "Card number",
		"fields.expiry":                  "Expiry (MM/YY)",
		"fields.code":                    "Security code",
		"fields.holder":                  "Name as on the card",
		"fields.doc_type":                "Document type",
		"fields.doc_number":              "Document number",
		"fields.submit":                  "Save card",
		"fields.cancel":                  "Cancel",
		"fields.error":                   "Mercado Pago could not validate the card. Check the details and try again.",
		"fields.noscript":                "Adding a card needs JavaScript: the fields are Mercado Pago's.",
		"fields.secure":                  "Mercado Pago keeps the card; the portal receives only a code to charge it.",
		"error.card_fields_refused":      "This portal does not take card details: cards are entered on the payment processor's secure page. Go back to Payment methods and choose Card.",
		"error.processor_unavailable":    "We could not reach the payment processor, and nothing was saved. Please try again in a few minutes.",
		"payment.status.processing":      "Processing",
		"payment.status.pending":         "Awaiting payment",
		"payment.status.closed":          "Voided",
		"payment.closed":                 "The subscription was canceled before this payment was made: it will not be charged.",
		"payment.status.succeeded":       "Paid",
		"payment.status.failed":          "Declined",
		"payment.succeeded":              "This payment is paid.",
		"payment.result.succeeded":       "Done! The payment went through.",
		"payment.pending":                "We are waiting for the money to arrive.",
		"payment.processing":             "We are processing the payment.",
		"payment.refresh":                "Refresh",
		"payment.failed":                 "The payment was declined.",
		"payment.incomplete":             "To complete this payment, add a payment method.",
		"payment.instructions":           "How to pay",
		"payment.qr_intro":               "Pay from your wallet with this code:",
		"payment.qr_scan":                "Scan this QR code with your wallet or banking app:",
		"payment.qr_label":               "QR code to pay",
		"payment.qr_paste":               "If your wallet accepts pasted codes, copy this one:",
		"payment.pay_again":              "Pay with another method",
		"payment.failed_contact":         "To pay it with another method, please contact us.",
		"payment.complete":               "Complete the payment",
		"payment.choose_method":          "Choose how you want to pay.",
		"payment.attempts":               "Charge attempts",

		"flash.method_added":                     "The payment method was added.",
		"flash.method_removed":                   "The payment method was removed.",
		"flash.order_saved":                      "The new order was saved.",
		"flash.preferred_changed":                "Your preferred payment method was changed.",
		"flash.subscription_method_saved":        "The subscription's payment method was saved.",
		"flash.subscription_canceled":            "The subscription was canceled.",
		"flash.subscription_canceled_period_end": "The subscription will be canceled at the end of the period.",
		"flash.subscription_resumed":             "The subscription stays active.",
		"flash.billing_saved":                    "Your billing information was saved.",
		"flash.payment_submitted":                "We received your payment method.",

		"form.fix_errors":      "Please check the marked fields.",
		"form.required":        "This field is required.",
		"form.optional":        "optional",
		"form.email_invalid":   "Enter a valid e-mail address, such as name@example.com.",
		"form.code_format":     "The code is numbers only. Copy it as it arrived.",
		"form.choose_account":  "Choose one of the accounts.",
		"form.wallet_choose":   "Choose your wallet.",
		"form.method_type":     "Choose a kind of payment method.",
		"form.exp_month":       "Enter the month as a number from 1 to 12.",
		"form.exp_year":        "Enter the year as a number, such as 2030.",
		"form.text_invalid":    "Check this value: it is too long or has characters that are not allowed.",
		"form.country":         "Use the 2-letter country code, such as AR.",
		"form.choose_option":   "Choose one of the options.",
		"form.tax_id_required": "With this VAT status, the CUIT is required.",
		"form.reason_invalid":  "The reason can be up to 500 characters long.",

		"error.home":                         "Go to the start page",
		"error.heading.400":                  "We could not understand the request",
		"error.heading.401":                  "Please sign in",
		"error.heading.403":                  "You cannot do this",
		"error.heading.404":                  "We could not find that",
		"error.heading.409":                  "That could not be done",
		"error.heading.410":                  "No longer available",
		"error.heading.413":                  "The form is too large",
		"error.heading.422":                  "That could not be done",
		"error.heading.429":                  "Too many tries",
		"error.heading.500":                  "Something went wrong",
		"error.heading.503":                  "The portal is not available",
		"error.not_found":                    "The page does not exist or is not part of your account.",
		"error.signed_out":                   "Your session has ended. Sign in again to continue.",
		"error.choose_first":                 "First choose the account you want to open.",
		"error.forbidden":                    "This section is not enabled in this portal.",
		"error.too_large":                    "The submitted form is too large.",
		"error.bad_request":                  "The submitted form is not valid.",
		"error.csrf":                         "The form has expired or did not come from this portal. Go back to the page and try again.",
		"error.csrf_pre":                     "The form has expired or did not come from this portal. Go back to the page and try again (cookies must be enabled).",
		"error.rate_limited":                 "There were too many tries in a short time. Wait a few minutes and try again.",
		"error.internal":                     "Something unexpected went wrong. Try again in a few minutes.",
		"error.unavailable":                  "The portal is not available right now. Try again in a few minutes.",
		"error.no_account":                   "We could not find an account for this sign-in. Write to us if you need help.",
		"error.link_customer_unknown":        "The link does not belong to any account. Ask whoever sent it for a new one.",
		"error.method_not_allowed":           "This portal does not accept that payment method.",
		"error.method_not_allowed_preferred": "That method cannot be the preferred one in this portal, which does not accept that kind of method.",
		"error.payment_not_payable":          "This payment no longer needs a payment method.",

		"mail.code_subject": "Your code to sign in to %s",
		"mail.code_intro":   "Your code to sign in to %s is:",
		"mail.code_expiry":  "It expires in %d minutes and works once. Do not share it with anyone.",
		"mail.code_ignore":  "If you did not ask for this code, ignore this message: nobody can sign in without it.",
		"mail.code_support": "Need help? Write to %s.",
	},
}
