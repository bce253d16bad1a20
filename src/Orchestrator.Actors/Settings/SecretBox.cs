// Secrets the ledger keeps (webhooks' signing secrets) are sealed with a node key before they are journaled.
using System.Security.Cryptography;
using System.Text;

namespace Orchestrator.Actors.Settings;

/// <summary>
/// Seals and opens secrets at rest with AES-256-GCM under one key. A sealed secret reads
/// <c>sealed:v1:BASE64(nonce ‖ ciphertext ‖ tag)</c>; anything else is a secret journaled in clear before sealing existed,
/// and opens as itself, so old journals still load. The key comes from <see cref="Load"/>.
/// </summary>
public sealed class SecretBox
{
    public const string Prefix = "sealed:v1:";

    /// <summary>The key as base64 (32 bytes); wins over every file. For clusters: the same on every control node.</summary>
    public const string KeyVariable = "ORCHESTRATOR_SECRETS_KEY";

    /// <summary>The key file's name in the data directory, beside admin.key, when the config names no other.</summary>
    public const string DefaultFileName = "secrets.key";

    private const int KeyBytes = 32;
    private const int NonceBytes = 12;
    private const int TagBytes = 16;

    // Binds a sealed value to what it is: a sealed webhook secret cannot be passed off as some other sealed thing.
    private static readonly byte[] Purpose = "orchestrator webhook secret v1"u8.ToArray();

    private readonly byte[] _key;

    public SecretBox(byte[] key)
    {
        if (key.Length != KeyBytes)
        {
            throw new ArgumentException($"a secrets key is {KeyBytes} bytes, this one {key.Length}", nameof(key));
        }

        _key = key.ToArray();
    }

    public static bool IsSealed(string stored) => stored.StartsWith(Prefix, StringComparison.Ordinal);

    public string Seal(string secret)
    {
        var plain = Encoding.UTF8.GetBytes(secret);
        var sealedBytes = new byte[NonceBytes + plain.Length + TagBytes];
        var nonce = sealedBytes.AsSpan(0, NonceBytes);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_key, TagBytes);
        aes.Encrypt(nonce, plain, sealedBytes.AsSpan(NonceBytes, plain.Length), sealedBytes.AsSpan(NonceBytes + plain.Length), Purpose);
        return Prefix + Convert.ToBase64String(sealedBytes);
    }

    /// <summary>The secret; a value not sealed is returned as it is (journaled before sealing existed).</summary>
    /// <exception cref="CryptographicException">sealed under another key, or altered.</exception>
    public string Open(string stored)
    {
        if (!IsSealed(stored))
        {
            return stored;
        }

        byte[] sealedBytes;
        try
        {
            sealedBytes = Convert.FromBase64String(stored[Prefix.Length..]);
        }
        catch (FormatException ex)
        {
            throw new CryptographicException("the sealed secret is not base64", ex);
        }

        if (sealedBytes.Length < NonceBytes + TagBytes)
        {
            throw new CryptographicException("the sealed secret is too short");
        }

        var plain = new byte[sealedBytes.Length - NonceBytes - TagBytes];
        using var aes = new AesGcm(_key, TagBytes);
        aes.Decrypt(sealedBytes.AsSpan(0, NonceBytes), sealedBytes.AsSpan(NonceBytes, plain.Length), sealedBytes.AsSpan(NonceBytes + plain.Length),
            plain, Purpose);
        return Encoding.UTF8.GetString(plain);
    }

    /// <summary>
    /// The node's key: <c>$ORCHESTRATOR_SECRETS_KEY</c> (base64) if set, else the file <paramref name="keyFile"/>, created
    /// (0600, 32 random bytes as base64) when missing. Nodes that may host the scheduler must share one key: a
    /// secret sealed on one is opened on whichever holds the singleton next.
    /// </summary>
    public static SecretBox Load(string keyFile, string? fromEnvironment = null)
    {
        fromEnvironment ??= Environment.GetEnvironmentVariable(KeyVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            return new SecretBox(Decode(fromEnvironment, $"${KeyVariable}"));
        }

        if (!File.Exists(keyFile))
        {
            var fresh = Convert.ToBase64String(RandomNumberGenerator.GetBytes(KeyBytes)) + "\n";
            try
            {
                // CreateNew: two nodes starting at once on one shared key file keep the first one's key.
                OwnerOnlyFiles.WriteNew(keyFile, fresh);
            }
            catch (IOException) when (File.Exists(keyFile))
            {
            }
        }

        return new SecretBox(Decode(File.ReadAllText(keyFile), keyFile));
    }

    private static byte[] Decode(string text, string where)
    {
        try
        {
            var key = Convert.FromBase64String(text.Trim());
            return key.Length == KeyBytes
                ? key
                : throw new Akka.Configuration.ConfigurationException($"{where}: a secrets key is {KeyBytes} bytes of base64, this one is {key.Length} bytes");
        }
        catch (FormatException)
        {
            throw new Akka.Configuration.ConfigurationException($"{where}: a secrets key is {KeyBytes} bytes of base64");
        }
    }
}
