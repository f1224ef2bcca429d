/* C smoke test of liblapmask_kernels: the header compiles as C, bad input returns a status (never aborts), and a
 * tiny known case is exact. Numerical comparisons against the Python references live in tests/ops/. */
#include "lapmask_kernels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                                                                 \
    do                                                                                                              \
    {                                                                                                               \
        if (!(cond))                                                                                                \
        {                                                                                                           \
            fprintf(stderr, "FAILED %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond, lapmask_last_error()); \
            ++failures;                                                                                             \
        }                                                                                                           \
    } while (0)

int main(void)
{
    lapmask_deform_conv_desc d;
    float x[4] = {1.f, 2.f, 3.f, 4.f}; /* [1, 1, 2, 2] */
    float w[1] = {2.f};                /* [1, 1, 1, 1]: a 1x1 kernel */
    float off[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    float out[4] = {0.f, 0.f, 0.f, 0.f};
    int64_t oh = 0, ow = 0;
    int i;

    CHECK(lapmask_kernels_abi_version() == LAPMASK_KERNELS_ABI_VERSION);
    CHECK(strncmp(lapmask_kernels_build_info(), "cpu", 3) == 0);

    lapmask_deform_conv_desc_init(&d);
    CHECK(d.kernel_h == 3 && d.stride_h == 1 && d.pad_top == 0 && d.group == 1 && d.offset_group == 1);
    d.batch = 1;
    d.channels = 1;
    d.height = 2;
    d.width = 2;
    d.out_channels = 1;
    d.kernel_h = 1;
    d.kernel_w = 1;
    CHECK(lapmask_deform_conv_output_size(&d, &oh, &ow) == LAPMASK_STATUS_OK && oh == 2 && ow == 2);

    /* zero offsets, no mask, 1x1 kernel: out = 2 * x exactly */
    CHECK(lapmask_deform_conv_cpu(&d, LAPMASK_DTYPE_FLOAT32, x, w, off, NULL, NULL, out) == LAPMASK_STATUS_OK);
    for (i = 0; i < 4; ++i)
    {
        CHECK(out[i] == 2.f * x[i]);
    }

    /* bad input: status + message, no crash */
    CHECK(lapmask_deform_conv_cpu(NULL, LAPMASK_DTYPE_FLOAT32, x, w, off, NULL, NULL, out)
        == LAPMASK_STATUS_INVALID_ARGUMENT);
    CHECK(strlen(lapmask_last_error()) > 0);
    CHECK(lapmask_deform_conv_cpu(&d, LAPMASK_DTYPE_INT32, x, w, off, NULL, NULL, out)
        == LAPMASK_STATUS_INVALID_ARGUMENT);
    CHECK(lapmask_deform_conv_cpu(&d, LAPMASK_DTYPE_FLOAT32, NULL, w, off, NULL, NULL, out)
        == LAPMASK_STATUS_INVALID_ARGUMENT);
    d.group = 2;
    CHECK(lapmask_deform_conv_cpu(&d, LAPMASK_DTYPE_FLOAT32, x, w, off, NULL, NULL, out)
        == LAPMASK_STATUS_INVALID_ARGUMENT);
    d.group = 1;
    d.kernel_h = 5; /* does not fit a 2x2 input without padding */
    CHECK(lapmask_deform_conv_output_size(&d, &oh, &ow) == LAPMASK_STATUS_INVALID_ARGUMENT);
    d.kernel_h = 1;
    d.height = (int64_t) 1 << 40;
    d.width = (int64_t) 1 << 40;
    CHECK(lapmask_deform_conv_cpu(&d, LAPMASK_DTYPE_FLOAT32, x, w, off, NULL, NULL, out)
        == LAPMASK_STATUS_INVALID_ARGUMENT);

    /* Matrix NMS: two identical same-label masks -> IoU 1, gaussian decay exp(-2) */
    {
        float masks[8] = {1.f, 1.f, 0.f, 0.f, 1.f, 1.f, 0.f, 0.f};
        float scores[2] = {0.9f, 0.8f};
        int32_t labels[2] = {3, 3};
        float dec[2] = {0.f, 0.f};
        int32_t code = -1;
        CHECK(lapmask_matrix_nms_kernel_from_name("linear", &code) == LAPMASK_STATUS_OK && code == LAPMASK_NMS_LINEAR);
        CHECK(lapmask_matrix_nms_kernel_from_name("box", &code) == LAPMASK_STATUS_INVALID_ARGUMENT);
        CHECK(lapmask_matrix_nms_cpu(2, 4, LAPMASK_DTYPE_FLOAT32, masks, scores, labels, LAPMASK_NMS_GAUSSIAN, 2.f, dec)
            == LAPMASK_STATUS_OK);
        CHECK(dec[0] == 0.9f);
        CHECK(fabsf(dec[1] - 0.8f * expf(-2.f)) < 1e-7f);
        CHECK(lapmask_matrix_nms_cpu(2, 4, LAPMASK_DTYPE_FLOAT32, masks, scores, labels, 7, 2.f, dec)
            == LAPMASK_STATUS_INVALID_ARGUMENT);
        CHECK(lapmask_matrix_nms_cpu(2, 4, LAPMASK_DTYPE_FLOAT32, masks, scores, labels, 0, NAN, dec)
            == LAPMASK_STATUS_INVALID_ARGUMENT);
        CHECK(lapmask_matrix_nms_cpu(0, 4, LAPMASK_DTYPE_FLOAT32, NULL, NULL, NULL, 0, 2.f, NULL) == LAPMASK_STATUS_OK);
    }

    if (!lapmask_kernels_has_cuda())
    {
        CHECK(lapmask_deform_conv_cuda(&d, LAPMASK_DTYPE_FLOAT32, x, w, off, NULL, NULL, out, NULL, 0, NULL)
            == LAPMASK_STATUS_NOT_COMPILED);
    }

    if (failures == 0)
    {
        printf("c_api_smoke: all checks passed (%s)\n", lapmask_kernels_build_info());
    }
    return failures == 0 ? 0 : 1;
}
