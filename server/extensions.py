"""Flask extensions, created unbound here and bound to the app in ``create_app``."""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from server.models.base import Base

db = SQLAlchemy(model_class=Base)
# Languages: server.core.i18n binds it and chooses each request's language.
babel = Babel()
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
# Counters live in RATELIMIT_STORAGE_URI; no default limits, each limited route names its own.
limiter = Limiter(key_func=get_remote_address)
