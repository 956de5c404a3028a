"""
The schema of a ``version: 1`` pipeline file, as pydantic models, and the
parameter model of every registered block type.

A file::

    version: 1
    processes:                    # optional; "local" always exists
      dsp: child                  # a child process on this machine
      lab: {url: "http://lab-pc:8750", token_env: PYRF_LAB_TOKEN}
      far: {url: "https://far-pc:8750", token_env: PYRF_FAR_TOKEN, ca: lab-ca.pem}
    blocks:                       # in any order; names are the keys
      wsa:
        type: simulated_instrument
        params: {center_frequency: 2.4GHz, sample_rate: 7.8125MHz}
      fft:
        type: fft_block
        inputs: [wsa]
        params: {size: 1Ki}
        proc: dsp
      spectrum:
        type: printer
        inputs: [fft]
        policy: latest            # of this block's input edges

Parameter types, units and ranges come from the block classes
(``param_rules``, ``param_units``, ``python_only_params``: see
:mod:`pyrf_blocks.params`), and otherwise from the type of the default
value.
"""

from typing import Annotated, Any, Literal, Optional

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, create_model,
                      field_validator, model_validator)

from ..edge import POLICIES
from ..errors import FieldError
from ..params import ParamSpec, param_specs
from ..registry import lookup, parameters
from .problems import shown

__all__ = ["PipelineSpec", "BlockSpec", "ProcessSpec", "ParamSpec", "param_specs",
           "params_model", "constructor_parameters", "SUPPORTED_VERSION", "NAME_PATTERN"]

#: The file format version this module reads and writes.
SUPPORTED_VERSION = 1
#: Block and process names: letters, digits, ``_``, ``-``, ``.``.
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
#: An input: a block's name, or ``name:output`` for another of its outputs.
INPUT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*(:[A-Za-z_][A-Za-z0-9_]*)?$"
InputRef = Annotated[str, Field(pattern=INPUT_PATTERN)]


def constructor_parameters(factory):
    """
    ``{name: default}`` of every keyword parameter a block type takes
    (:func:`pyrf_blocks.registry.parameters`: ``**kwargs`` followed to the
    base classes; the block fields of a file are not parameters).
    """
    return parameters(factory)


_MODELS = {}


def params_model(type_name):
    """
    A pydantic model of the ``params`` mapping of blocks of ``type_name``:
    unknown names are rejected, required ones must be present, and each
    value is checked by its :class:`ParamSpec`.
    """
    factory = lookup(type_name)
    cached = _MODELS.get(type_name)
    if cached is not None and cached[0] is factory:
        return cached[1]
    fields = {}
    for name, spec in param_specs(factory).items():
        checked = Annotated[Any, BeforeValidator(spec.check)]
        fields[name] = (checked, ... if spec.required else spec.default)
    model = create_model(f"{type_name}_params",
                         __config__=ConfigDict(extra="forbid"), **fields)
    _MODELS[type_name] = (factory, model)
    return model


class ProcessSpec(BaseModel):
    """
    Where blocks run: ``local`` (this process), ``child`` (a child process
    started for the pipeline) or ``remote`` (a worker at ``url``, with the
    bearer token read from the environment variable ``token_env``, and for
    an ``https://`` worker the ``ca`` certificate file its certificate must
    be signed by, relative to the pipeline file).
    A process may be written as the bare word ``local`` or ``child``; a
    mapping with a ``url`` is ``remote``.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "child", "remote"]
    url: Optional[Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")]] = None
    token_env: Optional[Annotated[str, Field(pattern=_ENV_NAME)]] = None
    ca: Optional[Annotated[str, Field(min_length=1)]] = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value):
        if isinstance(value, str):
            return {"kind": value}
        if isinstance(value, dict):
            if "token" in value:
                raise FieldError("token", "a literal token may not be written in a pipeline "
                                 "file; name the environment variable that holds "
                                 "it with token_env")
            if "kind" not in value and "url" in value:
                return dict(value, kind="remote")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.kind == "remote" and self.url is None:
            raise ValueError("a remote process needs a url (http://host:port)")
        if self.kind != "remote" and (self.url or self.token_env):
            raise ValueError(f"a {self.kind} process takes no url or token_env")
        if self.ca is not None and not (self.url or "").startswith("https://"):
            raise ValueError("ca (the CA certificate a worker's TLS certificate is "
                             "checked against) is for https:// workers only")
        return self


class BlockSpec(BaseModel):
    """
    One block: its registered ``type``, ``params``, the blocks it consumes
    (``inputs``, in order: a name, or ``name:output`` for a block's other
    outputs), the ``policy`` and ``maxsize`` of
    its input edges, and the process it runs in (``proc``).
    """

    model_config = ConfigDict(extra="forbid")

    type: str
    params: dict[str, Any] = {}
    inputs: list[InputRef] = []
    policy: Literal[POLICIES] = "block"
    maxsize: Optional[Annotated[int, Field(strict=True, ge=1)]] = None
    proc: Name = "local"

    @field_validator("inputs", mode="before")
    @classmethod
    def _single_input(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("params", "inputs", mode="before")
    @classmethod
    def _empty(cls, value, info):
        # "params:" with nothing after it means no parameters.
        if value is None:
            return {} if info.field_name == "params" else []
        return value


class PipelineSpec(BaseModel):
    """
    The top level of a file.  Each process and block is checked on its own
    (:class:`ProcessSpec`, :class:`BlockSpec`, :func:`params_model`), so that
    one mistake does not hide the others.
    """

    model_config = ConfigDict(extra="forbid")

    version: int
    description: Optional[str] = None
    processes: dict[Name, Any] = {}
    blocks: Annotated[dict[Name, Any], Field(min_length=1)]
    # Sensor pipelines beside the blocks, checked by pyrf_blocks.sensors.spec.
    pipeline: Optional[Any] = None
    pipelines: Optional[Any] = None

    @model_validator(mode="before")
    @classmethod
    def _extension_fields(cls, value):
        # Top-level "x-..." fields hold YAML anchors for sharing settings
        # (the docker-compose habit); they mean nothing by themselves.
        if isinstance(value, dict):
            return {key: item for key, item in value.items()
                    if not (isinstance(key, str) and key.startswith("x-"))}
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _supported(cls, value):
        if value != SUPPORTED_VERSION or isinstance(value, bool):
            raise ValueError(f"unsupported version {shown(value)}; this pyrf_blocks "
                             f"reads version {SUPPORTED_VERSION}")
        return value
