/* One optimizer step, and the validation pass. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/params.h"
#include "train/trainer_internal.h"

/* Saves the diagnostic checkpoint and leaves the one-line error for the step that went
 * non-finite. what names the quantity, detail says more (the other losses, the parameter). */
static int numeric_failure(duet_trainer *t, const char *what, double value, const char *detail, duet_err *err) {
  char dir[DUET_PATH_MAX], why[768];
  snprintf(why, sizeof why, "%s", detail);
  duet_err saved;
  /* Every rank is here (the verdict is on reduced values), as a sharded optimizer's gather needs. */
  int rc = duet_dist_opt_gather(&t->dist, &t->opt, 1, &saved);
  if (!rc) rc = duet_trainer_diag_save(t, dir, sizeof dir, &saved);
  duet_dist_opt_gather(&t->dist, &t->opt, 0, NULL);
  duet_err ignored;
  duet_trainer_plot(t, &ignored); /* the curves up to the failure help to read it */
  long long step = (long long)(t->step + 1);
  if (rc)
    return duet_err_set(err, DUET_ENUMERIC, "step %lld: %s is %g (%s); saving the diagnostic checkpoint failed: %s",
                        step, what, value, why, saved.msg);
  if (!t->is_main)
    return duet_err_set(err, DUET_ENUMERIC, "step %lld: %s is %g (%s)", step, what, value, why);
  return duet_err_set(err, DUET_ENUMERIC, "step %lld: %s is %g (%s); the step's starting state is in %s", step, what,
                      value, why, dir);
}

/* On the losses summed over micro-batches and ranks, so that every rank sees the same verdict
 * and stops together. */
static int check_loss(duet_trainer *t, const duet_train_stats *s, duet_err *err) {
  if (isfinite(s->loss)) return DUET_OK;
  char detail[256];
  const char *which = !isfinite(s->loss_video) && !isfinite(s->loss_audio) ? "both losses"
                      : !isfinite(s->loss_video)                           ? "the video loss"
                      : !isfinite(s->loss_audio)                           ? "the audio loss"
                                                                           : "their weighted sum";
  snprintf(detail, sizeof detail, "loss_video %g, loss_audio %g: %s", s->loss_video, s->loss_audio, which);
  return numeric_failure(t, "the training loss", s->loss, detail, err);
}

/* The last micro-batch's backward, with the gradient all-reduce overlapped when the dist seam
 * offers it and train.overlap_allreduce asks for it. Every rank reaches here for the last
 * micro-batch, with or without clips of its own (a rank without any still takes part in the
 * collectives, with zero gradients), and ends the overlap whatever backward returned: a rank
 * that left the collectives half made would block the others. */
static int last_backward(duet_trainer *t, duet_tensor *loss, duet_err *err) {
  const duet_train_dist *d = &t->dist;
  int overlap = t->cfg.train.overlap_allreduce && d->grads_begin && d->grad_ready && d->grads_end;
  /* With train.precision = bf16 the gradients final during backward are the bf16 copies'
   * (one micro-batch's, before they join the f32 sums), so the sum over ranks waits for the
   * f32 gradients after the step's micro-batches (duet_dist_average_grads). */
  if (t->mixed.copies) overlap = 0;
  if (!overlap) return loss ? duet_backward(&t->graph, loss, err) : DUET_OK;
  int rc = d->grads_begin(d->ctx, &t->params, err);
  if (rc) return rc;
  duet_graph_set_grad_ready(&t->graph, d->grad_ready, d->ctx);
  if (loss) rc = duet_backward(&t->graph, loss, err);
  duet_graph_set_grad_ready(&t->graph, NULL, NULL);
  duet_err end_err;
  int erc = d->grads_end(d->ctx, &t->params, &end_err);
  if (!rc && erc) {
    *err = end_err;
    rc = erc;
  }
  return rc;
}

/* Micro-batches of one step: forward, loss, backward, gradients accumulated in the params. */
static int accumulate(duet_trainer *t, duet_loss_sums *sums, int64_t *clips, duet_err *err) {
  const duet_train_settings *ts = &t->cfg.train;
  for (int k = 0; k < ts->accum; k++) {
    const duet_batch *b;
    int rc = duet_loader_next(t->train_loader, &b, err);
    if (rc) return rc;
    *clips += b->global_count;
    int last = k == ts->accum - 1;
    if (b->count == 0) { /* a rank with no share of an epoch's last global batch */
      if (last && (rc = last_backward(t, NULL, err))) return rc;
      continue;
    }
    if ((rc = duet_latent_batch_fill(t, t->n_train, b, err))) return rc;
    duet_graph_reset(&t->graph);
    duet_flow_loss fl;
    /* With train.precision = bf16 the micro-batch computes with bf16 copies of the weights. */
    if ((rc = duet_mixed_begin(&t->mixed, &t->params, err))) return rc;
    rc = duet_flow_loss_build(&t->graph, t->model, &t->cfg.flow, &t->lat.flow, (uint64_t)ts->seed, (uint64_t)t->step,
                              t->lat.sample_base, -1, &fl, err);
    /* A non-finite loss still runs backward: the verdict waits for the sums over ranks. */
    if (!rc) rc = last ? last_backward(t, fl.loss, err) : duet_backward(&t->graph, fl.loss, err);
    if ((rc = duet_mixed_end(&t->mixed, &t->params, rc, err))) return rc;
    duet_flow_loss_read(&fl);
    sums->loss += duet_tensor_scalar(fl.loss);
    sums->loss_video += fl.loss_video;
    sums->loss_audio += fl.loss_audio;
    sums->weight += 1;
  }
  return DUET_OK;
}

static int after_step(duet_trainer *t, const duet_train_stats *s, duet_err *err) {
  const duet_train_settings *ts = &t->cfg.train;
  int rc = DUET_OK;
  if (t->is_main) {
    duet_loader_pos pos = duet_loader_position(t->train_loader);
    duet_train_record r = {s->step, s->loss, s->loss_video, s->loss_audio, s->grad_norm, s->lr,
                           s->step_seconds > 0 ? (double)s->samples * t->tokens_per_sample / s->step_seconds : 0,
                           t->samples_seen, pos.epoch, t->train_seconds};
    rc = duet_metrics_log_train(&t->metrics, &r, err);
  }
  if (!rc && ts->log_every > 0 && (t->step % ts->log_every == 0 || t->step == ts->steps))
    duet_trainer_log_progress(t, s);
  if (!rc && t->val_loader && ts->val_every > 0 && t->step % ts->val_every == 0)
    rc = duet_trainer_validate(t, 1, NULL, err);
  if (!rc && ts->ckpt_every > 0 && t->step % ts->ckpt_every == 0) rc = duet_trainer_ckpt_save(t, err);
  return rc;
}

int duet_trainer_step(duet_trainer *t, duet_train_stats *stats, duet_err *err) {
  const duet_train_settings *ts = &t->cfg.train;
  double t0 = duet_trainer_now();
  double lr = duet_lr_at(&t->sched, t->step);
  t->step_pos = duet_loader_position(t->train_loader);
  duet_params_zero_grad(&t->params);
  duet_loss_sums sums = {0};
  int64_t clips = 0;
  int rc = accumulate(t, &sums, &clips, err);
  if (rc) return rc;
  double reduced[4] = {sums.loss, sums.loss_video, sums.loss_audio, sums.weight};
  if ((rc = duet_dist_sum(&t->dist, reduced, 4, err))) return rc;
  double w = reduced[3] > 0 ? reduced[3] : 1;
  duet_train_stats s = {t->step + 1, reduced[0] / w, reduced[1] / w, reduced[2] / w, 0, lr, (int)clips, 0};
  if ((rc = check_loss(t, &s, err))) return rc;
  if (ts->accum > 1) duet_grad_scale(&t->params, 1.0 / ts->accum);
  if ((rc = duet_dist_average_grads(&t->dist, &t->params, err))) return rc;
  duet_err clip_err;
  rc = duet_grad_clip(&t->params, ts->grad_clip, &s.grad_norm, &clip_err);
  if (rc == DUET_ENUMERIC) {
    char detail[768];
    snprintf(detail, sizeof detail, "loss %g; %.600s", s.loss, clip_err.msg);
    return numeric_failure(t, "the gradient norm", s.grad_norm, detail, err);
  }
  if (rc) {
    *err = clip_err;
    return rc;
  }
  if ((rc = duet_dist_opt_step(&t->dist, &t->opt, lr, err))) return rc;
  if ((rc = duet_ema_update(&t->ema, err))) return rc;
  t->step++;
  t->samples_seen += clips;
  s.step_seconds = duet_trainer_now() - t0;
  t->train_seconds += s.step_seconds;
  t->window_seconds += s.step_seconds;
  t->window_tokens += clips * t->tokens_per_sample;
  t->window_steps++;
  if (stats) *stats = s;
  return after_step(t, &s, err);
}

/* One pass over the held-out clips with the weights the parameters hold now; sums are
 * weighted by clips, so that a short last batch counts for what it holds. Leaves the loader
 * back at the first held-out clip, so it reads ahead for the next pass. */
static int validation_pass(duet_trainer *t, double sums[4], duet_err *err) {
  int rc = DUET_OK;
  for (int i = 0; i < t->cfg.train.val_batches && !rc; i++) {
    const duet_batch *b;
    if ((rc = duet_loader_next(t->val_loader, &b, err))) break;
    if (b->count > 0) {
      duet_flow_loss fl;
      rc = duet_latent_batch_fill(t, t->n_val, b, err);
      duet_graph_reset(&t->graph);
      if (!rc)
        rc = duet_flow_loss_build(&t->graph, t->model, &t->val_flow, &t->lat.flow, (uint64_t)t->cfg.train.seed,
                                  DUET_VAL_FLOW_STEP, t->lat.sample_base, -1, &fl, err);
      if (!rc) {
        duet_flow_loss_read(&fl);
        sums[0] += duet_tensor_scalar(fl.loss) * b->count;
        sums[1] += fl.loss_video * b->count;
        sums[2] += fl.loss_audio * b->count;
        sums[3] += b->count;
      }
    }
    if (b->epoch_end) break;
  }
  if (!rc) rc = duet_loader_seek(t->val_loader, (duet_loader_pos){0, 0}, err);
  return rc;
}

/* The training weights, then the EMA weights (what duet-infer samples with by default), on the
 * same clips and the same flow draws, so the two losses differ only by the weights. */
int duet_trainer_validate(duet_trainer *t, int log_it, double *loss, duet_err *err) {
  if (!t->val_loader) return duet_err_set(err, DUET_EINVAL, "validation needs held-out clips (data.val_clips > 0)");
  double t0 = duet_trainer_now();
  int prev = duet_graph_set_grad_enabled(&t->graph, 0);
  double reduced[8] = {0};
  int rc = validation_pass(t, reduced, err);
  if (!rc && t->have_ema) {
    duet_ema_swap(&t->ema);
    rc = validation_pass(t, reduced + 4, err);
    duet_ema_swap(&t->ema);
  }
  duet_graph_set_grad_enabled(&t->graph, prev);
  if (!rc) rc = duet_dist_sum(&t->dist, reduced, 8, err);
  if (rc) return duet_err_prefix(err, "validation: ");
  double w = reduced[3] > 0 ? reduced[3] : 1, we = reduced[7] > 0 ? reduced[7] : 1;
  duet_val_record r = {t->step, reduced[0] / w, reduced[1] / w, reduced[2] / w, (int64_t)reduced[3], t->have_ema,
                       reduced[4] / we, reduced[5] / we, reduced[6] / we};
  if (loss) *loss = r.loss;
  if (!log_it) return DUET_OK;
  if (r.has_ema)
    duet_trainer_logf(t, "val  step %lld  loss %.4f (video %.4f audio %.4f)  EMA %.4f (video %.4f audio %.4f)  %lld clips  %.1f s",
                      (long long)r.step, r.loss, r.loss_video, r.loss_audio, r.ema_loss, r.ema_loss_video,
                      r.ema_loss_audio, (long long)r.clips, duet_trainer_now() - t0);
  else
    duet_trainer_logf(t, "val  step %lld  loss %.4f (video %.4f audio %.4f)  %lld clips  %.1f s", (long long)r.step,
                      r.loss, r.loss_video, r.loss_audio, (long long)r.clips, duet_trainer_now() - t0);
  return t->is_main ? duet_metrics_log_val(&t->metrics, &r, err) : DUET_OK;
}
