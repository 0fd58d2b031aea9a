# GUILD Coins. `make dev` runs the local stack, `make test` the whole suite; both set up
# .venv from requirements.txt first when it is missing or older than the requirements.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := clients/typescript/node_modules/.installed

.PHONY: dev test unit lint docs chromium poppler token job bench openapi deploy fatora-contract sadad-contract vendor clean

$(STAMP): requirements.txt functions/requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

dev: $(STAMP)
	$(PY) -m local.stack

test: $(STAMP) chromium poppler $(NODE_STAMP)
	$(PY) -m pytest tests

# The lint gate (.ci/run runs it before the tests): the formatter's check, ruff's rules and
# mypy on the package, all set in pyproject.toml. `ruff format` and `ruff check --fix` repair most of it.
lint: $(STAMP)
	$(PY) -m ruff format --check functions local tests bench deploy
	$(PY) -m ruff check functions local tests bench deploy
	cd functions && ../$(PY) -m mypy --config-file ../pyproject.toml coins

# The fast tier alone: pure code and the deciders over a dict-backed store, no emulator (seconds).
unit: $(STAMP)
	$(PY) -m pytest tests/unit -q

# The TypeScript client's packages, as pinned by its package-lock.json.
$(NODE_STAMP): clients/typescript/package-lock.json
	cd clients/typescript && npm ci --no-audit --no-fund
	@touch $(NODE_STAMP)

# The browser tier drives Debian's chromium (Playwright's own download cannot reach its host here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium for the browser tier"; \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# The receipts' tests read the PDFs as a reader would: pdftotext and pdftoppm, Debian's poppler-utils.
poppler:
	@command -v pdftotext >/dev/null 2>&1 || { echo "installing poppler-utils for the receipts' tests"; \
	  apt-get update -qq && apt-get install -y -qq poppler-utils >/dev/null; }

token: $(STAMP)
	@test -n "$(uid)" || { echo "usage: make token uid=alice [admin=1]" >&2; exit 2; }
	@$(PY) -m local.tokens "$(uid)" $(if $(admin),--admin)

job: $(STAMP)
	@test -n "$(id)" -a -n "$(client)" || { echo "usage: make job id=job-1 client=alice [freelancer=bob]" >&2; exit 2; }
	@$(PY) -m local.jobs "$(id)" "$(client)" $(freelancer)

# The OpenAPI document, regenerated from the code (a test fails while the committed one is stale).
openapi: $(STAMP) $(NODE_STAMP)
	cd functions && ../$(PY) -m coins.openapi > ../docs/openapi.json
	cd clients/typescript && npm run --silent types

# The tables in docs/ that mirror the code (a test fails while they are stale).
docs: $(STAMP)
	$(PY) -m local.docs

bench: $(STAMP)
	$(PY) -m bench.ledger
	$(PY) -m bench.escrow
	$(PY) -m bench.reconcile
	$(PY) -m bench.storm
	$(PY) -m bench.receipts

# make deploy PROJECT=<id> REGION=<region> [SITE=...] [ADMIN_UIDS=a,b] [WITH_EXPO_TOKEN=1] [WITH_WEBHOOK_TOKEN=1] [WITH_BIGQUERY=1]
#   [SADAD_MID=<merchant id> [SADAD_DOMAIN=<domain>]]: every option of deploy/deploy.py; DRY_RUN=1 prints the commands.
deploy: $(STAMP)
	@test -n "$(PROJECT)" -a -n "$(REGION)" || { echo "usage: make deploy PROJECT=<project id> REGION=<region> [SITE=<site>] [ADMIN_UIDS=a,b] [WITH_EXPO_TOKEN=1] [WITH_WEBHOOK_TOKEN=1] [WITH_BIGQUERY=1] [SADAD_MID=<merchant id> [SADAD_DOMAIN=<domain>]] [DRY_RUN=1]" >&2; exit 2; }
	@$(PY) -m deploy.deploy --project "$(PROJECT)" --region "$(REGION)" $(if $(SITE),--site "$(SITE)") $(if $(ADMIN_UIDS),--admin-uids "$(ADMIN_UIDS)") $(if $(WITH_EXPO_TOKEN),--with-expo-token) $(if $(WITH_WEBHOOK_TOKEN),--with-webhook-token) $(if $(WITH_BIGQUERY),--with-bigquery) $(if $(SADAD_MID),--sadad-merchant-id "$(SADAD_MID)" $(if $(SADAD_DOMAIN),--sadad-website "$(SADAD_DOMAIN)"))

# Fatora's real API against what the client expects (FATORA_API_KEY, FATORA_BASE_URL; not part of make test).
fatora-contract: $(STAMP)
	@$(PY) -m deploy.fatora_contract

# SADAD's real checkout and API against what coins/sadad.py sends and expects (SADAD_MERCHANT_ID,
# SADAD_SECRET_KEY: a test key, SADAD_WEBSITE, [SADAD_TRANSACTION_NUMBER]; not part of make test).
sadad-contract: $(STAMP)
	@$(PY) -m deploy.sadad_contract

# The console's third-party scripts, from npm at the pinned versions of public/admin/vendor/README.md.
vendor:
	rm -rf /tmp/coins-vendor && mkdir -p /tmp/coins-vendor && cd /tmp/coins-vendor && npm init -y >/dev/null && \
	  npm install --silent chart.js@4.6.1 firebase@13.2.0
	cp /tmp/coins-vendor/node_modules/chart.js/dist/chart.umd.min.js public/admin/vendor/chart-4.6.1.umd.min.js
	cp /tmp/coins-vendor/node_modules/firebase/firebase-app-compat.js public/admin/vendor/firebase-app-compat-13.2.0.js
	cp /tmp/coins-vendor/node_modules/firebase/firebase-auth-compat.js public/admin/vendor/firebase-auth-compat-13.2.0.js
	sed -i 's#//\# sourceMappingURL=.*##' public/admin/vendor/*.js

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
