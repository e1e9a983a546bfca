from spp_shared.kit.alembic_env import run
from spp_sites.models import Base

run(Base.metadata)
