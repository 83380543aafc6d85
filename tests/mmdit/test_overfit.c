/* The tiny model memorises one fixed batch (fixed times and noise): the flow-matching loss
 * falls by at least 10x within a few hundred AdamW steps. */
#include <math.h>

#include "batch_fixture.h"
#include "core/optim.h"
#include "testlib.h"
#include "tiny_config.h"

int main(void) {
  duet_model_config c = tiny_model_config();
  duet_param_set ps;
  duet_params_init(&ps);
  duet_mmdit *m;
  duet_err err;
  CHECK(duet_mmdit_create(&m, &c, &ps, 11, &err) == DUET_OK);
  duet_flow_config fc;
  duet_flow_config_defaults(&fc);
  fc.text_dropout = 0;
  batch_fixture bf;
  batch_fixture_make(&bf, &c, 2, 5);
  duet_adamw opt;
  duet_adamw_config ac = duet_adamw_defaults();
  duet_adamw_init(&opt, &ps, &ac, NULL, NULL, &err);
  duet_graph g;
  duet_graph_init(&g, 1 << 22);
  double first = 0, last = 0;
  for (int step = 0; step < 300; step++) {
    duet_graph_reset(&g);
    duet_params_zero_grad(&ps);
    duet_flow_loss fl;
    /* Step 0's draws every time: the same x_t and target, so the batch can be memorised. */
    if (duet_flow_loss_build(&g, m, &fc, &bf.batch, 1, 0, 0, DUET_TASK_T2AV, &fl, &err) != DUET_OK ||
        duet_backward(&g, fl.loss, &err) != DUET_OK) {
      CHECK_MSG(0, "step %d: %s", step, err.msg);
      break;
    }
    double l = duet_tensor_get(fl.loss, 0);
    duet_flow_loss_read(&fl);
    if (step == 0) first = l;
    last = l;
    double lr = step < 20 ? 3e-3 * (step + 1) / 20 : 3e-3;
    duet_adamw_step(&opt, lr, &err);
    if (step % 50 == 0) printf("step %3d loss %.5f (video %.5f audio %.5f)\n", step, l, fl.loss_video, fl.loss_audio);
  }
  printf("first %.5f last %.5f ratio %.1f\n", first, last, first / last);
  CHECK_MSG(last * 10 <= first, "loss fell only from %g to %g", first, last);
  duet_graph_free(&g);
  duet_adamw_free(&opt);
  batch_fixture_free(&bf);
  duet_mmdit_free(m);
  duet_params_free(&ps);
  return test_finish("mmdit_overfit");
}
