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

Parameter types come from the block classes: ``param_units`` (a unit of
:data:`~pyrf_blocks.pipeline.units.UNITS` per parameter, or a tuple of units
for a list of rows such as ``tones``), ``python_only_params`` (parameters
only Python code can give, e.g. a stream), and otherwise the type of the
default value.
"""

import inspect
from typing import Annotated, Any, Literal, Optional

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, create_model,
                      field_validator, model_validator)

from ..edge import POLICIES
from ..errors import FieldError
from ..registry import lookup, parameters
from .problems import shown
from .units import UNITS, parse_quantity

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


class ParamSpec:
    """
    One parameter of a block type: its default, unit and accepted type.
    """

    def __init__(self, name, default, unit=None, python_only=False):
        self.name = name
        self.default = default
        self.required = default is inspect.Parameter.empty
        self.unit = unit
        # A default YAML cannot write (a function, an object) means a value
        # only Python can give.
        self.python_only = python_only or not (
            self.required or default is None or type(default) in _YAML_TYPES)
        self.nullable = default is None

    def __repr__(self):
        return f"<ParamSpec {self.name} {self.type_text}>"

    @property
    def type_text(self):
        """
        What the parameter accepts, in words for messages and docs.
        """
        if self.python_only:
            return "Python only"
        if isinstance(self.unit, tuple):
            text = "list of [" + ", ".join(self.unit) + "]"
        elif self.unit == "count":
            text = "count"
        elif self.unit is not None:
            text = f"quantity in {self.unit}"
        else:
            text = _TYPE_WORDS.get(self._python_type(), "any value")
        return text + (" or null" if self.nullable and text != "any value" else "")

    def _python_type(self):
        if self.required or self.default is None:
            return None
        if isinstance(self.default, (tuple, list)):
            return list
        return type(self.default)

    def check(self, value):
        """
        ``value`` as read from a file, converted to what the block takes.

        :raises ValueError: with a message naming the parameter.
        """
        name = self.name
        if self.python_only:
            raise ValueError(f"{name} can only be given in Python, not in a "
                             "pipeline file")
        if value is None and self.nullable:
            return None
        if isinstance(self.unit, tuple):
            return self._check_rows(value)
        if self.unit is not None:
            return parse_quantity(value, self.unit, name)
        wanted = self._python_type()
        if wanted is None:
            return value
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ValueError(f"{name}: {shown(value)} is too large") from None
        if wanted is list and isinstance(value, list):
            return value
        if type(value) is not wanted:
            raise ValueError(f"{name}: expected {_TYPE_WORDS[wanted]}, got "
                             f"{_describe(value)}")
        return value

    def _check_rows(self, value):
        units = self.unit
        shape = "[" + ", ".join(units) + "]"
        if not isinstance(value, list):
            raise ValueError(f"{self.name}: expected a list of {shape} rows, "
                             f"got {_describe(value)}")
        rows = []
        for number, row in enumerate(value, 1):
            field = f"{self.name} row {number}"
            if not isinstance(row, list) or len(row) != len(units):
                raise ValueError(f"{field}: expected {shape}, got {shown(row)}")
            rows.append(tuple(parse_quantity(item, unit, field)
                              for item, unit in zip(row, units)))
        return rows


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number",
               str: "a string", list: "a list", dict: "a mapping"}
_YAML_TYPES = (bool, int, float, str, list, tuple, dict)


def _describe(value):
    if value is None:
        return "null"
    return f"{shown(value)} ({_TYPE_WORDS.get(type(value), type(value).__name__)})"


def constructor_parameters(factory):
    """
    ``{name: default}`` of every keyword parameter a block type takes
    (:func:`pyrf_blocks.registry.parameters`: ``**kwargs`` followed to the
    base classes; the block fields of a file are not parameters).
    """
    return parameters(factory)


def param_specs(factory):
    """
    ``{name: ParamSpec}`` for every keyword parameter of a block type.
    """
    units = getattr(factory, "param_units", {})
    python_only = set(getattr(factory, "python_only_params", ()))
    specs = {name: ParamSpec(name, default, units.get(name), name in python_only)
             for name, default in constructor_parameters(factory).items()}
    for name in units:
        if name not in specs:
            raise TypeError(f"{factory.__name__}.param_units names {name!r}, "
                            "which is not one of its parameters")
        unit = units[name]
        for part in unit if isinstance(unit, tuple) else (unit,):
            if part not in UNITS:
                raise TypeError(f"{factory.__name__}.param_units: unknown unit "
                                f"{part!r} for {name}")
    return specs


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
