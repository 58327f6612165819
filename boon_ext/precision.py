"""Precision changes that keep complex weights complex, shared by every BOON model class.

``torch.nn.Module.double`` leaves complex parameters as they are, and ``Module.to(dtype)`` / ``Module.type`` cast
them to a real dtype, dropping their imaginary parts: a Fourier layer's spectral weights would silently lose half
of themselves. :class:`PrecisionMixin` replaces those casts on BOON's models (``BOONFNO``, ``BOONTFNO``,
``BOONWrapper``, whatever model the last one wraps): ``double()`` / ``float()`` move real tensors to the dtype
and complex ones to the matching complex dtype, and the casts that would drop imaginary parts or leave the
float32/float64 the exactness needs are refused, naming what to call instead.
"""

from __future__ import annotations

import torch

__all__ = ["PrecisionMixin"]


class PrecisionMixin:
    """Mixed into a ``torch.nn.Module`` subclass before the module class (``class M(PrecisionMixin, FNO)``)."""

    def half(self):
        """Refused: BOON runs in float32 or float64 (use ``torch.autocast`` for mixed precision).

        Raises
        ------
        TypeError
        """
        raise TypeError(
            f"{type(self).__name__} does not run in half precision (float16 spectra cannot carry an exact "
            "correction): keep it in float32 and train under torch.autocast, e.g. Trainer(mixed_precision=True)"
        )

    def bfloat16(self):
        """Refused, as :meth:`half`.

        Raises
        ------
        TypeError
        """
        raise TypeError(
            f"{type(self).__name__} does not run in bfloat16 (the correction needs float32 or float64): keep it "
            "in float32 and train under torch.autocast, e.g. Trainer(mixed_precision=True)"
        )

    def _cast(self, dtype: torch.dtype):
        """Real parameters and buffers to ``dtype``, complex ones to the matching complex dtype (nothing dropped)."""
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        cache = getattr(self, "_operator_cache", None)  # BOONFNO's face spectra, computed in the old dtype
        if cache is not None:
            cache.clear()
        return self._apply(lambda t: t.to(dtype) if t.is_floating_point() else t.to(cdtype) if t.is_complex() else t)

    def double(self):
        """Cast to float64: real parameters to float64 and the complex spectral weights to complex128.

        ``torch.nn.Module.double`` leaves complex parameters as they are, so a float64 model would keep complex64
        spectral weights; here they follow the real parameters, and no imaginary part is dropped.

        Returns
        -------
        torch.nn.Module
            ``self``.
        """
        return self._cast(torch.float64)

    def float(self):
        """Cast to float32: real parameters to float32 and the complex spectral weights to complex64.

        Returns
        -------
        torch.nn.Module
            ``self``.
        """
        return self._cast(torch.float32)

    def type(self, dst_type):
        """Refused: ``Module.type`` casts every parameter, complex ones included, to one type.

        Raises
        ------
        TypeError
            Always; use :meth:`double` / :meth:`float` for precision and ``.to(device)`` to move the model.
        """
        raise TypeError(
            f"{type(self).__name__}.type({dst_type}) would cast the complex spectral weights to that type, dropping "
            "their imaginary parts: use model.double() or model.float() to change precision, and .to(device) to "
            "move the model"
        )

    def to(self, *args, **kwargs):
        """``torch.nn.Module.to`` for devices; a dtype is refused (use :meth:`float` / :meth:`double`).

        ``Module.to(dtype)`` casts complex parameters to the real dtype, which would drop the imaginary parts of
        the spectral weights; ``model.double()`` and ``model.float()`` cast the real parameters to that dtype and
        the complex ones to the matching complex dtype.

        Raises
        ------
        ValueError
            A dtype was given.
        """
        _, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if dtype is not None:
            if dtype in (torch.float16, torch.bfloat16):
                self.half() if dtype == torch.float16 else self.bfloat16()
            raise ValueError(
                f"{type(self).__name__}.to({dtype}) would cast the complex spectral weights to {dtype}, dropping "
                "their imaginary parts: use model.double() or model.float() to change precision, and .to(device) "
                "to move the model"
            )
        return super().to(*args, **kwargs)
