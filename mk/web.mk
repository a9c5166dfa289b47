# Browser libraries served by the app itself (no CDN: the union's intranet has no internet).
# The npm packages are pinned in web/assets/package.json + package-lock.json; `make web-assets`
# installs them (scripts disabled) and copies the files the pages load into web/static/vendor/
# (gitignored). To add a library: add it to web/assets/package.json, run
# `npm install --package-lock-only --prefix web/assets`, and add its copy lines below.

WEB_ASSETS := web/assets
WEB_VENDOR := web/static/vendor
WEB_NODE := $(WEB_ASSETS)/node_modules

.PHONY: web-assets web-assets-clean

web-assets: $(WEB_VENDOR)/.installed

$(WEB_VENDOR)/.installed: $(WEB_ASSETS)/package.json $(WEB_ASSETS)/package-lock.json mk/web.mk
	npm ci --prefix $(WEB_ASSETS) --ignore-scripts --no-audit --no-fund
	mkdir -p $(WEB_VENDOR)/swagger-ui
	cp $(WEB_NODE)/swagger-ui-dist/swagger-ui.css \
	   $(WEB_NODE)/swagger-ui-dist/swagger-ui-bundle.js \
	   $(WEB_NODE)/swagger-ui-dist/swagger-ui-standalone-preset.js \
	   $(WEB_NODE)/swagger-ui-dist/favicon-32x32.png \
	   $(WEB_NODE)/swagger-ui-dist/LICENSE \
	   $(WEB_VENDOR)/swagger-ui/
	mkdir -p $(WEB_VENDOR)/chart.js $(WEB_VENDOR)/cytoscape
	cp $(WEB_NODE)/chart.js/dist/chart.umd.min.js $(WEB_NODE)/chart.js/LICENSE.md $(WEB_VENDOR)/chart.js/
	cp $(WEB_NODE)/cytoscape/dist/cytoscape.min.js $(WEB_NODE)/cytoscape/LICENSE $(WEB_VENDOR)/cytoscape/
	touch $@

web-assets-clean:
	rm -rf $(WEB_NODE) $(WEB_VENDOR)

# Page texts: message ids are the Chinese texts (the default language needs no catalogue); the
# English catalogue is web/translations/en/LC_MESSAGES/messages.po. After changing page texts run
# `make web-i18n-update`, translate the new entries, then `make web-i18n` (the .mo is committed too,
# so a fresh checkout switches to English without a build step; tests/test_ui_i18n.py checks it is current).
WEB_PYBABEL := $(or $(VENV),.venv)/bin/pybabel
WEB_I18N := web/translations

.PHONY: web-i18n web-i18n-update

web-i18n: $(WEB_I18N)/en/LC_MESSAGES/messages.mo

$(WEB_I18N)/en/LC_MESSAGES/messages.mo: $(WEB_I18N)/en/LC_MESSAGES/messages.po
	$(WEB_PYBABEL) compile -d $(WEB_I18N) -D messages

web-i18n-update:
	$(WEB_PYBABEL) extract -F $(WEB_I18N)/babel.cfg -k _l -o $(WEB_I18N)/messages.pot .
	$(WEB_PYBABEL) update -i $(WEB_I18N)/messages.pot -d $(WEB_I18N) -D messages --no-fuzzy-matching
