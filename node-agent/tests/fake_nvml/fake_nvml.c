/*
 * A stand-in libnvidia-ml.so.1 for tests: answers exactly the NVML calls the agent's
 * nvml backend makes (through nvml-wrapper, which resolves each symbol on first use)
 * for FAKE_GPU_COUNT fake GPUs with fixed UUIDs. Scenarios are chosen at compile time,
 * so parallel tests each build their own copy (a separate path is a separate dlopen
 * instance with its own state):
 *
 *   -DFAKE_GPU_COUNT=N          number of GPUs (default 2, at most 64)
 *   -DFAKE_XID_GPU=I -DFAKE_XID=X
 *                               GPU I reports XID X once, through nvmlEventSetWait_v2
 *   -DFAKE_ECC_GPU=I            GPU I has 2 volatile uncorrected ECC errors
 *   -DFAKE_LOST_GPU=I           GPU I answers NVML_ERROR_GPU_IS_LOST from its first
 *                               utilisation query on (it falls off the bus after discovery)
 *   -DFAKE_DRIVER_NOT_LOADED    nvmlInit_v2 fails with NVML_ERROR_DRIVER_NOT_LOADED
 *   -DFAKE_ENERGY_RESET_AT=K    each GPU's energy counter restarts (a driver reload) at
 *                               its K-th read
 *   -DFAKE_NO_GPM_GPU=I         GPU I has no GPM (nvmlGpmQueryDeviceSupport says so), as
 *                               before Hopper
 *   -DFAKE_NO_GPM               the GPM functions are not exported (a driver before R520)
 *
 * Energy: each read of a GPU's total energy counter finds it FAKE_ENERGY_STEP_MJ (120 J)
 * higher, so a job's energy is exactly 120 J per interval between two reads.
 * GPM (Hopper and newer): GPU I reports graphics-engine 60+10I %, SM 45+10I %, any-tensor
 * 30+10I % and DRAM-bandwidth 25+I % activity between any two samples. Like NVML,
 * nvmlGpmMetricsGet wants two samples of one GPU at least 100 ms apart, in order, and
 * a sample buffer that is never freed is a leak: at most 4 per GPU may be live.
 *
 * Build: gcc -shared -fPIC -o libnvidia-ml.so.1 fake_nvml.c
 * Struct layouts follow nvml.h (as mirrored by nvml-wrapper-sys 0.10).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef FAKE_GPU_COUNT
#define FAKE_GPU_COUNT 2
#endif
#ifndef FAKE_XID_GPU
#define FAKE_XID_GPU -1
#endif
#ifndef FAKE_XID
#define FAKE_XID 79
#endif
#ifndef FAKE_ECC_GPU
#define FAKE_ECC_GPU -1
#endif
#ifndef FAKE_LOST_GPU
#define FAKE_LOST_GPU -1
#endif
#ifndef FAKE_ENERGY_RESET_AT
#define FAKE_ENERGY_RESET_AT 0
#endif
#ifndef FAKE_NO_GPM_GPU
#define FAKE_NO_GPM_GPU -1
#endif
#define FAKE_ENERGY_STEP_MJ 120000ULL

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_TIMEOUT 10
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_MEMORY 20
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25

#define NVML_EVENT_TYPE_XID 8ULL
#define MIB (1024ULL * 1024ULL)

struct fake_gpu {
    unsigned index;
    int registered;
    int lost;
    unsigned long long energy_reads;
    unsigned long long gpm_seq;
};
typedef struct fake_gpu *nvmlDevice_t;

struct fake_set {
    int unused;
};
typedef struct fake_set *nvmlEventSet_t;

typedef struct {
    char busIdLegacy[16];
    unsigned domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

typedef struct {
    unsigned gpu, memory;
} nvmlUtilization_t;

typedef struct {
    nvmlDevice_t device;
    unsigned long long eventType, eventData;
    unsigned gpuInstanceId, computeInstanceId;
} nvmlEventData_t;

typedef union {
    double dVal;
    int siVal;
    unsigned uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    long long sllVal;
    unsigned short usVal;
} nvmlValue_t;

typedef struct {
    unsigned fieldId, scopeId;
    long long timestamp, latencyUsec;
    int valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

static struct fake_gpu gpus[64];
static struct fake_set the_set;
/* NVML keeps a reference count: each nvmlInit_v2 needs its nvmlShutdown, and only the
 * last one shuts down (a handle dropped late must not shut down a newer one's). */
static int initialised;
static int xid_delivered;

#define GPU_OR_FAIL(d)                                                   \
    do {                                                                 \
        if (!initialised) return NVML_ERROR_UNINITIALIZED;               \
        if ((d) == NULL) return NVML_ERROR_INVALID_ARGUMENT;             \
        if ((d)->lost) return NVML_ERROR_GPU_IS_LOST;                    \
    } while (0)

nvmlReturn_t nvmlInit_v2(void) {
#ifdef FAKE_DRIVER_NOT_LOADED
    return NVML_ERROR_DRIVER_NOT_LOADED;
#else
    for (unsigned i = 0; i < FAKE_GPU_COUNT && i < 64; i++) {
        gpus[i].index = i;
    }
    initialised++;
    return NVML_SUCCESS;
#endif
}

nvmlReturn_t nvmlShutdown(void) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    initialised--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r) {
    (void)r;
    return "fake NVML error";
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned length) {
    snprintf(version, length, "550.54.15");
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    *count = FAKE_GPU_COUNT;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t *device) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (index >= FAKE_GPU_COUNT) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &gpus[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t d, unsigned *index) {
    GPU_OR_FAIL(d);
    *index = d->index;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned length) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    /* The UUID stays readable after the GPU is lost, as the event path needs it. */
    snprintf(uuid, length, "GPU-fa4e0000-0000-4000-8000-%012u", d->index);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned length) {
    GPU_OR_FAIL(d);
    snprintf(name, length, "NVIDIA H100 80GB HBM3");
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *pci) {
    GPU_OR_FAIL(d);
    memset(pci, 0, sizeof *pci);
    pci->bus = 0x1B + d->index;
    pci->pciDeviceId = 0x233010DE;
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "0000:%02X:00.0", pci->bus);
    snprintf(pci->busId, sizeof pci->busId, "00000000:%02X:00.0", pci->bus);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    GPU_OR_FAIL(d);
    m->total = 81559ULL * MIB;
    m->reserved = 512ULL * MIB;
    m->used = (1024ULL + 1024ULL * d->index) * MIB;
    m->free = m->total - m->reserved - m->used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    GPU_OR_FAIL(d);
    if ((int)d->index == FAKE_LOST_GPU) {
        d->lost = 1;
        return NVML_ERROR_GPU_IS_LOST;
    }
    u->gpu = 40 + 10 * d->index;
    u->memory = 20 + d->index;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned *temp) {
    GPU_OR_FAIL(d);
    if (sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
    *temp = 45 + d->index;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned *mw) {
    GPU_OR_FAIL(d);
    *mw = 120000 + 1000 * d->index;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *mj) {
    GPU_OR_FAIL(d);
    unsigned long long k = ++d->energy_reads;
    if (FAKE_ENERGY_RESET_AT > 0 && k >= FAKE_ENERGY_RESET_AT) {
        /* The driver reloaded just after the previous read: the counter restarted. */
        *mj = FAKE_ENERGY_STEP_MJ * (k - FAKE_ENERGY_RESET_AT + 1);
    } else {
        *mj = 5000000ULL + 1000ULL * d->index + FAKE_ENERGY_STEP_MJ * k;
    }
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned *mhz) {
    GPU_OR_FAIL(d);
    switch (type) {
    case 1: *mhz = 1980; return NVML_SUCCESS; /* SM */
    case 2: *mhz = 2619; return NVML_SUCCESS; /* memory */
    case 0: *mhz = 1980; return NVML_SUCCESS; /* graphics */
    default: return NVML_ERROR_NOT_SUPPORTED;
    }
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int errorType, int counterType,
                                         unsigned long long *count) {
    GPU_OR_FAIL(d);
    if (counterType != 0 && counterType != 1) return NVML_ERROR_INVALID_ARGUMENT;
    if (errorType == 0) {
        *count = 3; /* corrected */
    } else if (errorType == 1) {
        *count = ((int)d->index == FAKE_ECC_GPU) ? 2 : 0;
    } else {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    return NVML_SUCCESS;
}

/* Hopper has no page retirement (it remaps rows), as NVML says. */
nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t d, int cause, unsigned *count,
                                       unsigned long long *addresses) {
    (void)cause; (void)count; (void)addresses;
    GPU_OR_FAIL(d);
    return NVML_ERROR_NOT_SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t d, int count, nvmlFieldValue_t *values) {
    GPU_OR_FAIL(d);
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *v = &values[i];
        v->valueType = 3; /* unsigned long long */
        v->nvmlReturn = NVML_SUCCESS;
        switch (v->fieldId) {
        case 142: v->value.ullVal = 1; break; /* remapped rows, correctable */
        case 143: v->value.ullVal = 0; break; /* uncorrectable */
        case 144: v->value.ullVal = 0; break; /* pending */
        case 145: v->value.ullVal = 0; break; /* failure */
        default: v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED; break;
        }
    }
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned *current, unsigned *pending) {
    GPU_OR_FAIL(d);
    *current = 0;
    *pending = 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t d, unsigned long long *types) {
    GPU_OR_FAIL(d);
    *types = NVML_EVENT_TYPE_XID | 1ULL | 2ULL | 4ULL;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    *set = &the_set;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types, nvmlEventSet_t set) {
    GPU_OR_FAIL(d);
    if (set != &the_set) return NVML_ERROR_INVALID_ARGUMENT;
    if (types & NVML_EVENT_TYPE_XID) d->registered = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned timeout_ms) {
    (void)timeout_ms;
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (set != &the_set) return NVML_ERROR_INVALID_ARGUMENT;
    if (FAKE_XID_GPU >= 0 && FAKE_XID_GPU < FAKE_GPU_COUNT && !xid_delivered &&
        gpus[FAKE_XID_GPU].registered) {
        xid_delivered = 1;
        memset(data, 0, sizeof *data);
        data->device = &gpus[FAKE_XID_GPU];
        data->eventType = NVML_EVENT_TYPE_XID;
        data->eventData = FAKE_XID;
        return NVML_SUCCESS;
    }
    return NVML_ERROR_TIMEOUT;
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    (void)set;
    return NVML_SUCCESS;
}

#ifndef FAKE_NO_GPM
typedef struct {
    unsigned version;
    unsigned isSupportedDevice;
} nvmlGpmSupport_t;

struct fake_gpm_sample {
    struct fake_gpu *gpu;
    unsigned long long seq;
    struct timespec taken;
};
typedef struct fake_gpm_sample *nvmlGpmSample_t;

typedef struct {
    unsigned metricId;
    nvmlReturn_t nvmlReturn;
    double value;
    struct {
        char *shortName;
        char *longName;
        char *unit;
    } metricInfo;
} nvmlGpmMetric_t;

#define NVML_GPM_METRIC_MAX 210
typedef struct {
    unsigned version;
    unsigned numMetrics;
    nvmlGpmSample_t sample1;
    nvmlGpmSample_t sample2;
    nvmlGpmMetric_t metrics[NVML_GPM_METRIC_MAX];
} nvmlGpmMetricsGet_t;

static int gpm_live;

static int has_gpm(const struct fake_gpu *g) {
    return (int)g->index != FAKE_NO_GPM_GPU;
}

nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t d, nvmlGpmSupport_t *support) {
    GPU_OR_FAIL(d);
    if (support == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (support->version != 1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    support->isSupportedDevice = has_gpm(d) ? 1 : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t *sample) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (sample == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (gpm_live >= 4 * FAKE_GPU_COUNT) return NVML_ERROR_MEMORY; /* samples leak */
    *sample = calloc(1, sizeof **sample);
    if (*sample == NULL) return NVML_ERROR_MEMORY;
    gpm_live++;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t sample) {
    if (sample == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    free(sample);
    gpm_live--;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t d, nvmlGpmSample_t sample) {
    GPU_OR_FAIL(d);
    if (sample == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (!has_gpm(d)) return NVML_ERROR_NOT_SUPPORTED;
    sample->gpu = d;
    sample->seq = ++d->gpm_seq;
    clock_gettime(CLOCK_MONOTONIC, &sample->taken);
    return NVML_SUCCESS;
}

static char *metric_names[][3] = {
    {"gr_util", "graphics engine activity", "%"},
    {"sm_util", "SM activity", "%"},
    {"tensor_util", "any tensor pipe activity", "%"},
    {"dram_bw_util", "DRAM bandwidth", "%"},
};

nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *m) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (m->version != 1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (m->numMetrics > NVML_GPM_METRIC_MAX) return NVML_ERROR_INVALID_ARGUMENT;
    nvmlGpmSample_t a = m->sample1, b = m->sample2;
    if (a == NULL || b == NULL || a->gpu == NULL || a->gpu != b->gpu || a->seq >= b->seq)
        return NVML_ERROR_INVALID_ARGUMENT;
    double apart_ms = (b->taken.tv_sec - a->taken.tv_sec) * 1e3 +
                      (b->taken.tv_nsec - a->taken.tv_nsec) / 1e6;
    if (apart_ms < 100.0) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned i = a->gpu->index;
    for (unsigned k = 0; k < m->numMetrics; k++) {
        nvmlGpmMetric_t *metric = &m->metrics[k];
        int name = -1;
        metric->nvmlReturn = NVML_SUCCESS;
        switch (metric->metricId) {
        case 1: metric->value = 60.0 + 10.0 * i; name = 0; break;  /* GRAPHICS_UTIL */
        case 2: metric->value = 45.0 + 10.0 * i; name = 1; break;  /* SM_UTIL */
        case 5: metric->value = 30.0 + 10.0 * i; name = 2; break;  /* ANY_TENSOR_UTIL */
        case 10: metric->value = 25.0 + 1.0 * i; name = 3; break;  /* DRAM_BW_UTIL */
        default: metric->nvmlReturn = NVML_ERROR_NOT_SUPPORTED; break;
        }
        if (name >= 0) {
            metric->metricInfo.shortName = metric_names[name][0];
            metric->metricInfo.longName = metric_names[name][1];
            metric->metricInfo.unit = metric_names[name][2];
        }
    }
    return NVML_SUCCESS;
}
#endif
