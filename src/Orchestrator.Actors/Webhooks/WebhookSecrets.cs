using Orchestrator.Actors.Settings;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Actors.Webhooks;

public static class WebhookSecrets
{
    /// <summary>
    /// Seals the webhook secrets an earlier version journaled in clear, in the state, so the next snapshot holds them
    /// sealed (the old events stay as they were written until the journal is compacted).
    /// </summary>
    public static LedgerState SealClearSecrets(this LedgerState state, SecretBox box) =>
        state.Webhooks.Values.All(w => SecretBox.IsSealed(w.Secret))
            ? state
            : state with
            {
                Webhooks = state.Webhooks.SetItems(state.Webhooks.Values.Where(w => !SecretBox.IsSealed(w.Secret))
                    .Select(w => KeyValuePair.Create(w.Id, w with { Secret = box.Seal(w.Secret) }))),
            };
}
