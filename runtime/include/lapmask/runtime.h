// Umbrella header of the lapmask C++ runtime.
#pragma once

#include "lapmask/metadata.h"
#include "lapmask/model.h"
#include "lapmask/postprocess.h"
#include "lapmask/prediction_json.h"
#include "lapmask/preprocess.h"
#include "lapmask/rle.h"
#include "lapmask/types.h"
